package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
)

// smallDisk is a tmpfs the test mounted over a node's data folder: a disk
// that fills up, and that the test can grow again.
type smallDisk struct {
	t   testing.TB
	dir string
}

// mountSmallDisk moves the folder dir onto a tmpfs of its current size
// plus spare bytes: dir's files are copied aside, the tmpfs mounted over
// dir, and the files copied back. It skips the test, saying why, when the
// test does not run as root or the mount fails. The tmpfs is unmounted at
// cleanup (lazily: a process the test killed may still hold it a moment).
func mountSmallDisk(t testing.TB, dir string, spare int64) *smallDisk {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("disk-full test skipped: mounting a small tmpfs needs root")
	}
	d, err := tryMountSmallDisk(t, dir, spare)
	if err != nil {
		t.Skipf("disk-full test skipped: %v", err)
	}
	return d
}

// tryMountSmallDisk is mountSmallDisk returning why it could not mount.
func tryMountSmallDisk(t testing.TB, dir string, spare int64) (*smallDisk, error) {
	t.Helper()
	used, err := dirSize(dir)
	if err != nil {
		return nil, err
	}
	aside := t.TempDir()
	if err := os.CopyFS(aside, os.DirFS(dir)); err != nil {
		return nil, err
	}
	size := (used+spare)/4096*4096 + 4096
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mount -t tmpfs on %s: %v: %s", dir, err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	if err := os.CopyFS(dir, os.DirFS(aside)); err != nil {
		return nil, err
	}
	t.Logf("%s on a tmpfs of %d bytes, %d used", dir, size, used)
	return &smallDisk{t: t, dir: dir}, nil
}

// canMountTmpfs reports whether the test may mount a tmpfs (it runs as
// root and a mount on a folder of its own works), and why not.
func canMountTmpfs(t testing.TB) (bool, string) {
	if os.Geteuid() != 0 {
		return false, "mounting a tmpfs needs root"
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		return false, fmt.Sprintf("mount -t tmpfs: %v: %s", err, bytes.TrimSpace(out))
	}
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		t.Errorf("umount %s: %v: %s", dir, err, out)
	}
	return true, ""
}

// grow remounts the tmpfs with size bytes.
func (d *smallDisk) grow(size int64) {
	d.t.Helper()
	if out, err := exec.Command("mount", "-o", fmt.Sprintf("remount,size=%d", size), d.dir).CombinedOutput(); err != nil {
		d.t.Fatalf("remount %s: %v: %s", d.dir, err, out)
	}
}

// shrink remounts the tmpfs with what its files take now plus spare
// bytes.
func (d *smallDisk) shrink(spare int64) {
	d.t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(d.dir, &st); err != nil {
		d.t.Fatal(err)
	}
	used := int64(st.Blocks-st.Bfree) * st.Bsize
	d.grow((used+spare)/4096*4096 + 4096)
}

// free returns the bytes free on the tmpfs.
func (d *smallDisk) free() int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(d.dir, &st); err != nil {
		d.t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// dirSize returns the bytes the regular files under dir take.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			info, err := e.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}

// TestDiskFull: one member's data folder is on a small tmpfs, and a
// write load fills it; the member is a follower, or the leader. The other
// two keep committing: a follower that cannot append is left behind, and
// a leader that cannot append hands the chain's lead to another member.
// While its disk is full the member neither crashes nor corrupts its
// stores, and says why it stopped: an error naming the full disk in its
// log, StoreError in its status and /readyz not ready. A change of leader
// (a planned transfer between the other two, a term change the full
// member must record) does not bring it down either. Once the disk grows
// it catches up and is ready again, and every acknowledged write is on
// every member with the digest it was acknowledged with. Under -short
// only the leader's case runs (the one the cluster had to learn).
func TestDiskFull(t *testing.T) {
	for _, tc := range []struct {
		name   string
		leader bool
	}{{"follower", false}, {"leader", true}} {
		t.Run(tc.name, func(t *testing.T) {
			if testing.Short() && !tc.leader {
				t.Skip("not in -short: the leader's case runs")
			}
			testDiskFull(t, tc.leader)
		})
	}
}

func testDiskFull(t *testing.T, leaderFull bool) {
	if os.Geteuid() != 0 {
		t.Skip("disk-full test skipped: mounting a small tmpfs needs root")
	}
	pc := newProcCluster(t, 3, 2)
	leader := pc.waitLeader(30 * time.Second)
	nd := leader
	if !leaderFull {
		nd = pc.others(leader)[0]
	}
	soakTerm(pc, nd)
	disk := mountSmallDisk(t, filepath.Join(nd.dir, "data"), 1<<20)
	pc.restart(nd)
	pc.waitVoters(3, 60*time.Second)

	l := pc.startLoad(pc.users)
	logText := func() string {
		b, _ := os.ReadFile(nd.p.log.Name())
		return string(b)
	}
	// The disk fills, and the member says so.
	testutil.WaitFor(t, 2*time.Minute, func() error {
		st, err := diskStatus(nd, pc.id)
		if err != nil {
			return err
		}
		if !strings.Contains(st.StoreError, "no space left on device") || st.Ready {
			return fmt.Errorf("%d writes acknowledged, %d bytes free on the small disk; status: ready %v, store error %q",
				l.count(), disk.free(), st.Ready, st.StoreError)
		}
		return nil
	})
	if !strings.Contains(logText(), "no space left on device") {
		t.Fatal("the full member's log does not say its disk is full")
	}
	if code, body := readyz(nd); code != http.StatusServiceUnavailable || !strings.Contains(body, "cannot write its Raft log") {
		t.Fatalf("/readyz of the full member: %d %q", code, body)
	}
	// The console's cluster view shows it too.
	testutil.WaitFor(t, 30*time.Second, func() error {
		code, body := httpBody("http://" + nd.admin + "/console/api/cluster")
		var v struct {
			Channels []struct {
				StoreError string `json:"store_error"`
			} `json:"channels"`
		}
		if err := json.Unmarshal([]byte(body), &v); err != nil || code != http.StatusOK {
			return fmt.Errorf("console cluster view: %d %s", code, body)
		}
		if len(v.Channels) != 1 || !strings.Contains(v.Channels[0].StoreError, "no space left on device") {
			return fmt.Errorf("console cluster view without the store error: %s", body)
		}
		return nil
	})
	t.Logf("disk full after %d writes", l.count())

	// The others commit without it; a full leader has handed its lead on.
	lead := pc.waitLeader(30 * time.Second)
	if lead == nd {
		t.Fatalf("the member whose disk is full leads")
	}
	waitWrites(t, l, 100, "since the disk filled")
	// A change of term while the disk is full.
	to := pc.others(lead)[0]
	if to == nd {
		to = pc.others(lead)[1]
	}
	if out, err := exec.Command(scraftBin, "transfer", "--node", lead.admin, "--to", to.key.Address().String(),
		"--channel", pc.id.String()).CombinedOutput(); err != nil {
		t.Fatalf("scraft transfer: %v\n%s", err, out)
	}
	waitWrites(t, l, 100, "since the transfer")
	select {
	case <-nd.p.done:
		t.Fatalf("the member whose disk is full exited:\n%s", tail(logText(), 4000))
	default:
	}
	if st, err := diskStatus(nd, pc.id); err != nil || st.StoreError == "" {
		t.Fatalf("the full member's status %+v, %v: want its store error still", st, err)
	}

	// Room again: it catches up, and is ready.
	disk.grow(64 << 20)
	waitWrites(t, l, 50, "since the disk grew")
	acks := l.end()
	pc.checkAcked(acks, pc.nodes, 2*time.Minute)
	testutil.WaitFor(t, time.Minute, func() error {
		if code, body := readyz(nd); code != http.StatusOK {
			return fmt.Errorf("/readyz: %d %s", code, body)
		}
		return nil
	})
	if strings.Contains(logText(), "panic") {
		t.Fatalf("the full member's log tells of a panic:\n%s", tail(logText(), 4000))
	}
	t.Logf("%d writes acknowledged, all on every member", len(acks))
}

// waitWrites waits for n more acknowledged writes of l.
func waitWrites(t *testing.T, l *load, n int, what string) {
	t.Helper()
	before := l.count()
	testutil.WaitFor(t, time.Minute, func() error {
		if got := l.count() - before; got < n {
			return fmt.Errorf("%d of %d writes %s", got, n, what)
		}
		return nil
	})
}

// diskStatus reads whether a node is ready in the channel and why its
// last Raft log write failed, if it did, from its /status.
func diskStatus(nd *procNode, id protocol.ChannelID) (*struct {
	Ready      bool
	StoreError string
}, error) {
	hc := http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get("http://" + nd.admin + "/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var sts []struct {
		Channel    protocol.ChannelID `json:"channel"`
		Ready      bool               `json:"ready"`
		StoreError string             `json:"store_error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&sts); err != nil {
		return nil, err
	}
	for _, st := range sts {
		if st.Channel == id {
			return &struct {
				Ready      bool
				StoreError string
			}{st.Ready, st.StoreError}, nil
		}
	}
	return nil, fmt.Errorf("node %s does not host channel %s", nd.addr, id)
}

// readyz returns a node's /readyz answer.
func readyz(nd *procNode) (int, string) { return httpBody("http://" + nd.admin + "/readyz") }

// httpBody returns the status and body of a GET of u.
func httpBody(u string) (int, string) {
	hc := http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
