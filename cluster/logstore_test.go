package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"google.golang.org/grpc"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
)

// Raft's stable store keys (raft's api.go; unexported there).
var (
	keyCurrentTerm  = []byte("CurrentTerm")
	keyLastVoteTerm = []byte("LastVoteTerm")
	keyLastVoteCand = []byte("LastVoteCand")
)

var logStoreKinds = []string{LogStoreBolt, LogStoreWAL}

func testLog(i uint64) *raft.Log {
	data := bytes.Repeat([]byte{byte(i)}, 1024)
	copy(data, strconv.FormatUint(i, 10))
	return &raft.Log{Index: i, Term: 1 + i/100, Type: raft.LogCommand, Data: data}
}

func storeLogs(t *testing.T, s raftStore, from, to uint64) {
	t.Helper()
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, testLog(i))
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
}

func checkLogs(t *testing.T, s raftStore, from, to uint64) {
	t.Helper()
	for i := from; i <= to; i++ {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatalf("log %d: %v", i, err)
		}
		if want := testLog(i); l.Index != i || l.Term != want.Term || !bytes.Equal(l.Data, want.Data) {
			t.Fatalf("log %d: got index %d term %d, want term %d and its data", i, l.Index, l.Term, want.Term)
		}
	}
}

// checkTruncated checks that no log up to to is found: a truncated log
// must make Raft send a snapshot, not the entries.
func checkTruncated(t *testing.T, s raftStore, to uint64) {
	t.Helper()
	for _, i := range []uint64{1, to / 2, to} {
		var l raft.Log
		if err := s.GetLog(i, &l); !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("log %d after truncating to %d: %v, want raft.ErrLogNotFound", i, to, err)
		}
	}
}

func mustOpenLogStore(t *testing.T, dir, want string) (raftStore, string) {
	t.Helper()
	s, kind, err := openLogStore(dir, want, testutil.Logger(t, "wal"))
	if err != nil {
		t.Fatal(err)
	}
	return s, kind
}

// TestLogStoreReopen: each kind keeps the log, the term and the vote over
// a close and reopen, whether the reopen names the kind or leaves it
// empty, and a compaction's truncation stays done.
func TestLogStoreReopen(t *testing.T) {
	for _, kind := range logStoreKinds {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			s, got := mustOpenLogStore(t, dir, kind)
			if got != kind {
				t.Fatalf("opened %s, want %s", got, kind)
			}
			storeLogs(t, s, 1, 300)
			if err := s.SetUint64(keyCurrentTerm, 7); err != nil {
				t.Fatal(err)
			}
			if err := s.Set(keyLastVoteCand, []byte("0xcandidate")); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteRange(1, 100); err != nil {
				t.Fatal(err)
			}
			checkTruncated(t, s, 100)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(logStorePath(dir, kind)); err != nil {
				t.Fatalf("no %s store on disk: %v", kind, err)
			}
			for _, want := range []string{kind, ""} {
				s, got := mustOpenLogStore(t, dir, want)
				if got != kind {
					t.Fatalf("reopened with %q as %s, want %s", want, got, kind)
				}
				first, _ := s.FirstIndex()
				last, _ := s.LastIndex()
				if first != 101 || last != 300 {
					t.Fatalf("log %d-%d after reopen, want 101-300", first, last)
				}
				checkLogs(t, s, 101, 300)
				checkTruncated(t, s, 100)
				if term, err := s.GetUint64(keyCurrentTerm); err != nil || term != 7 {
					t.Fatalf("current term %d (%v), want 7", term, err)
				}
				if v, err := s.Get(keyLastVoteCand); err != nil || string(v) != "0xcandidate" {
					t.Fatalf("vote %q (%v)", v, err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestLogStoreNewDefault: a folder with no store gets DefaultLogStore when
// none is asked for.
func TestLogStoreNewDefault(t *testing.T) {
	dir := t.TempDir()
	s, kind := mustOpenLogStore(t, dir, "")
	defer s.Close()
	if kind != DefaultLogStore {
		t.Fatalf("new store %s, want %s", kind, DefaultLogStore)
	}
	if _, err := os.Stat(logStorePath(dir, DefaultLogStore)); err != nil {
		t.Fatal(err)
	}
}

// TestLogStoreMismatchRefused: a channel created with one kind is not
// opened as the other: the error names both, and no store of the other
// kind is created beside it (an empty one would forget the term and vote).
func TestLogStoreMismatchRefused(t *testing.T) {
	for _, kind := range logStoreKinds {
		other := LogStoreWAL
		if kind == LogStoreWAL {
			other = LogStoreBolt
		}
		t.Run(kind+"-as-"+other, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := mustOpenLogStore(t, dir, kind)
			storeLogs(t, s, 1, 10)
			if err := s.SetUint64(keyCurrentTerm, 3); err != nil {
				t.Fatal(err)
			}
			s.Close()
			_, _, err := openLogStore(dir, other, hclog.NewNullLogger())
			if !errors.Is(err, ErrLogStore) {
				t.Fatalf("opened as %s: %v, want ErrLogStore", other, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "a "+kind+" store") || !strings.Contains(msg, "asked for is "+other) {
				t.Fatalf("error does not name both kinds: %s", msg)
			}
			if _, err := os.Stat(logStorePath(dir, other)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a %s store was created beside the %s one: %v", other, kind, err)
			}
			// The data is still there for the right kind.
			s, _ = mustOpenLogStore(t, dir, kind)
			defer s.Close()
			checkLogs(t, s, 1, 10)
		})
	}
}

// TestLogStoreBadFolder: what an operator (or a mistake) may leave in a
// channel's folder: both kinds, a folder where the bolt file belongs, a
// file where the wal folder belongs, an unknown kind. Each is refused
// with a clear error.
func TestLogStoreBadFolder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
		is    error
		kind  string
	}{
		{"both", func(t *testing.T, dir string) {
			s, _ := mustOpenLogStore(t, dir, LogStoreBolt)
			s.Close()
			s, _, err := openLogStore(filepath.Join(dir, "x"), LogStoreWAL, hclog.NewNullLogger())
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			if err := os.Rename(filepath.Join(dir, "x", walDir), filepath.Join(dir, walDir)); err != nil {
				t.Fatal(err)
			}
		}, "holds both", ErrLogStore, ""},
		{"bolt file is a folder", func(t *testing.T, dir string) {
			os.Mkdir(filepath.Join(dir, boltFile), 0o700)
		}, "is not a file", ErrLogStore, ""},
		{"wal folder is a file", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, walDir), []byte("x"), 0o600)
		}, "is not a folder", ErrLogStore, ""},
		{"unknown kind", func(*testing.T, string) {}, `"rocks"`, ErrConfig, "rocks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			s, _, err := openLogStore(dir, tc.kind, hclog.NewNullLogger())
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %v with %q", err, tc.is, tc.want)
			}
		})
	}
	// An empty wal/ (a creation that stopped before writing) holds nothing
	// to lose: the folder counts as new.
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, walDir), 0o700)
	s, kind := mustOpenLogStore(t, dir, LogStoreBolt)
	s.Close()
	if kind != LogStoreBolt {
		t.Fatalf("opened %s", kind)
	}
	// Config.Validate refuses an unknown kind too.
	k, _ := protocol.GenerateKey(nil)
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Key, cfg.Address = t.TempDir(), k, "127.0.0.1:1"
	cfg.Chain = newTestChain(t).client(k)
	cfg.Executors = func(string, []byte) (fsm.Executor, error) { return counterExec{}, nil }
	cfg.RaftTransport = func(string) (raft.Transport, error) { return nil, nil }
	cfg.Dial = func(string) (*grpc.ClientConn, error) { return nil, nil }
	if err := cfg.Validate(); err != nil {
		t.Fatalf("a valid config: %v", err)
	}
	cfg.LogStore = "rocks"
	if err := cfg.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), `LogStore ("rocks")`) {
		t.Fatalf("LogStore rocks: %v", err)
	}
}

// logStoreChildEnv makes TestLogStoreChild write to the store it names
// (KIND:DIR) until it is killed.
const logStoreChildEnv = "SCRAFT_LOGSTORE_CHILD"

// TestLogStoreChild is the writer TestLogStoreKill kills: it stores logs
// of 1 KiB, one to eight at a time, raising the term and voting every 16
// writes and truncating the head every 64, and prints each write once it
// returned ("log N", "term T", "trunc M").
func TestLogStoreChild(t *testing.T) {
	spec := os.Getenv(logStoreChildEnv)
	if spec == "" {
		t.Skip("run by TestLogStoreKill")
	}
	kind, dir, _ := strings.Cut(spec, ":")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s, _, err := openLogStore(dir, kind, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	out := bufio.NewWriter(os.Stdout)
	next := uint64(1)
	for w := 1; ; w++ {
		n := uint64(1 + w%8)
		var logs []*raft.Log
		for i := next; i < next+n; i++ {
			logs = append(logs, testLog(i))
		}
		if err := s.StoreLogs(logs); err != nil {
			t.Fatal(err)
		}
		next += n
		fmt.Fprintf(out, "log %d\n", next-1)
		if w%16 == 0 {
			term := uint64(w / 16)
			if err := s.SetUint64(keyCurrentTerm, term); err != nil {
				t.Fatal(err)
			}
			if err := s.SetUint64(keyLastVoteTerm, term); err != nil {
				t.Fatal(err)
			}
			if err := s.Set(keyLastVoteCand, []byte(fmt.Sprintf("cand-%d", term))); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(out, "term %d\n", term)
		}
		if w%64 == 0 {
			m := next - 100
			if err := s.DeleteRange(1, m); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(out, "trunc %d\n", m)
		}
		out.Flush()
	}
}

// TestLogStoreKill: a process writing to a store is killed with SIGKILL
// in the middle of its writes, three times over the same folder; after
// each kill every log it was told was stored is there with its data, and
// so are the last term and vote it was told were stored. The process
// never closes the store.
func TestLogStoreKill(t *testing.T) {
	if os.Getenv(logStoreChildEnv) != "" {
		t.Skip("in the child")
	}
	for _, kind := range logStoreKinds {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			for round := 0; round < 3; round++ {
				// Each round starts on a fresh folder of its own, since
				// the child numbers its logs from 1.
				d := filepath.Join(dir, strconv.Itoa(round))
				lastLog, lastTerm, lastTrunc := killWriter(t, kind, d, 300+round*150)
				s, got := mustOpenLogStore(t, d, "")
				if got != kind {
					t.Fatalf("reopened as %s", got)
				}
				last, err := s.LastIndex()
				if err != nil || last < lastLog {
					t.Fatalf("last index %d (%v), but log %d was acknowledged", last, err, lastLog)
				}
				checkLogs(t, s, lastTrunc+1, lastLog)
				term, err := s.GetUint64(keyCurrentTerm)
				if err != nil || term < lastTerm {
					t.Fatalf("current term %d (%v), but term %d was acknowledged", term, err, lastTerm)
				}
				vt, _ := s.GetUint64(keyLastVoteTerm)
				cand, _ := s.Get(keyLastVoteCand)
				if vt != term || string(cand) != fmt.Sprintf("cand-%d", term) {
					t.Fatalf("vote %q in term %d, current term %d", cand, vt, term)
				}
				t.Logf("round %d: killed after log %d, term %d; found log up to %d, term %d", round, lastLog, lastTerm, last, term)
				// The store takes writes after the crash.
				storeLogs(t, s, last+1, last+10)
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// killWriter runs TestLogStoreChild on dir until it acknowledged at least
// logs logs and a term, kills it with SIGKILL while it writes, and
// returns the last log, term and truncation it acknowledged.
func killWriter(t *testing.T, kind, dir string, logs int) (lastLog, lastTerm, lastTrunc uint64) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLogStoreChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), logStoreChildEnv+"="+kind+":"+dir)
	var stderr, other bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		killed := false
		for sc.Scan() {
			what, n, _ := strings.Cut(sc.Text(), " ")
			v, _ := strconv.ParseUint(n, 10, 64)
			if killed {
				continue // written before the kill landed: not counted
			}
			switch what {
			case "log":
				lastLog = v
			case "term":
				lastTerm = v
			case "trunc":
				lastTrunc = v
			default:
				other.WriteString(sc.Text() + "\n")
			}
			if lastLog >= uint64(logs) && lastTerm > 0 {
				cmd.Process.Kill()
				killed = true
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	select {
	case <-done:
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		t.Fatalf("the writer did not reach log %d", logs)
	}
	err = cmd.Wait()
	if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ProcessState.Sys() == nil || ee.ProcessState.ExitCode() != -1 {
		t.Fatalf("writer ended with %v, not by the kill: %s%s", err, other.Bytes(), stderr.Bytes())
	}
	return lastLog, lastTerm, lastTrunc
}

// TestLogStoreChannel runs the key cluster paths on each kind of store:
// three nodes commit through every member, the leader stops and a new one
// writes, the old leader comes back on its data and catches up. A node
// started with the other kind named refuses to host the channel and
// leaves its data as it was. Every other cluster test runs on
// DefaultLogStore: -short runs the other kind only.
func TestLogStoreChannel(t *testing.T) {
	kinds := logStoreKinds
	if testing.Short() {
		kinds = slices.DeleteFunc(slices.Clone(kinds), func(k string) bool { return k == DefaultLogStore })
	}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			tune := func(c *Config) { c.LogStore = kind }
			tc := newTestClusterUsers(t, 3, 3, tune)
			old := tc.waitLeader(10 * time.Second)
			for _, nd := range tc.nodes {
				if _, err := os.Stat(logStorePath(tc.channel(nd).dir, kind)); err != nil {
					t.Fatalf("node %s: no %s store: %v", nd.addr, kind, err)
				}
				if got := tc.channel(nd).storeKind; got != kind {
					t.Fatalf("node %s: store %s, want %s", nd.addr, got, kind)
				}
			}
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				out := tc.load(stop, tc.users[3:], func(i int) *testNode { return tc.nodes[i%3] })
				tc.mu.Lock()
				tc.acked = out
				tc.mu.Unlock()
			}()
			testutil.Eventually(t, 10*time.Second, "writes before the stop", func() bool {
				return tc.channel(old).Status().Height >= 20
			})
			tc.stopNode(old)
			nl := tc.waitLeader(10 * time.Second)
			h := tc.channel(nl).Status().Height
			testutil.Eventually(t, 10*time.Second, "writes after the failover", func() bool {
				return tc.channel(nl).Status().Height >= h+20
			})
			close(stop)
			<-done

			// The other kind, named, is refused; nothing of it is created.
			other := LogStoreWAL
			if kind == LogStoreWAL {
				other = LogStoreBolt
			}
			tc.startNode(old, func(c *Config) { c.LogStore = other })
			err := old.node.Start(context.Background())
			if !errors.Is(err, ErrLogStore) || !strings.Contains(err.Error(), other) || !strings.Contains(err.Error(), kind) {
				t.Fatalf("started with log store %s on a %s channel: %v", other, kind, err)
			}
			tc.stopNode(old)
			if _, err := os.Stat(logStorePath(channelDir(old.cfg.DataDir, tc.id), other)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a %s store was created: %v", other, err)
			}

			// Unset, the node opens the kind it finds, and catches up.
			tc.restartNode(old)
			tc.checkConverged(tc.acked, 20*time.Second)
		})
	}
}
