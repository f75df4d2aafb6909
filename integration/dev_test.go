package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
)

// TestDevWorld runs the quick start's `scraft dev` on a data folder, runs
// the inspection commands it prints against it, stops it with SIGTERM, and
// runs it again on the same folder: the same channel resumes where it
// stopped, and the players' calls go on committing.
func TestDevWorld(t *testing.T) {
	data := filepath.Join(t.TempDir(), "world")
	p := startProc(t, "dev", "dev", "--data", data, "--players", "3")
	out := func() string {
		b, _ := os.ReadFile(p.log.Name())
		return string(b)
	}
	testutil.WaitFor(t, 60*time.Second, func() error {
		if !strings.Contains(out(), "curl http://") {
			return errors.New("scraft dev has not printed how to inspect it yet")
		}
		return nil
	})
	commands := map[string][]string{}
	for _, line := range strings.Split(out(), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[0] == "scraft" {
			commands[f[1]] = f[1:]
		}
		if len(f) == 2 && f[0] == "curl" {
			commands["curl"] = f[1:]
		}
	}
	for _, c := range []string{"status", "subscribe", "chain", "curl"} {
		if commands[c] == nil {
			t.Fatalf("scraft dev printed no %s command:\n%s", c, out())
		}
	}
	channel := regexp.MustCompile(`channel (0x[0-9a-f]{32}) created`).FindStringSubmatch(out())
	if channel == nil {
		t.Fatalf("no channel created:\n%s", out())
	}

	// The printed commands work against the running world.
	var height uint64
	testutil.WaitFor(t, 60*time.Second, func() error {
		b, err := exec.Command(scraftBin, append(commands["status"], "--json", "--timeout", "5s")...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("scraft status: %v: %s", err, b)
		}
		var st struct {
			Height uint64 `json:"height"`
			Ready  bool   `json:"ready"`
		}
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("scraft status --json: %v: %s", err, b)
		}
		if !st.Ready || st.Height < 20 {
			return fmt.Errorf("status: height %d, ready %v", st.Height, st.Ready)
		}
		height = st.Height
		return nil
	})
	if b, err := exec.Command(scraftBin, commands["chain"]...).CombinedOutput(); err != nil || !strings.Contains(string(b), "movecraft") {
		t.Fatalf("scraft chain show: %v:\n%s", err, b)
	}
	// The channel records MoveCraft's ABI on chain, which call,
	// subscribe and the console decode with.
	shownJSON, err := exec.Command(scraftBin, append(commands["chain"], "--json")...).Output()
	if err != nil {
		t.Fatalf("scraft chain show --json: %v:\n%s", err, shownJSON)
	}
	var shown struct {
		ABI struct {
			Present bool `json:"present"`
		} `json:"abi"`
	}
	if err := json.Unmarshal(shownJSON, &shown); err != nil || !shown.ABI.Present {
		t.Fatalf("chain show: the dev channel has no ABI on record (%v):\n%s", err, shownJSON)
	}
	if b, err := exec.Command(scraftBin, append(commands["subscribe"], "--count", "3", "--timeout", "20s")...).CombinedOutput(); err != nil {
		t.Fatalf("scraft subscribe: %v:\n%s", err, b)
	}
	resp, err := http.Get(commands["curl"][0])
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin /status: %s", resp.Status)
	}

	p.signal(syscall.SIGTERM)
	<-p.done
	stopped := regexp.MustCompile(`stopped: (\d+) txs committed, (\d+) failed`).FindStringSubmatch(out())
	if stopped == nil || stopped[1] == "0" {
		t.Fatalf("first run did not stop cleanly with txs committed:\n%s", out())
	}
	if !strings.Contains(out(), "height ") {
		t.Fatalf("no status line:\n%s", out())
	}

	// Again on the same folder: the same channel, resumed, and the
	// players commit again (their nonces continue).
	again := startProc(t, "dev-again", "dev", "--data", data, "--duration", "15s")
	<-again.done
	b, _ := os.ReadFile(again.log.Name())
	if !strings.Contains(string(b), "channel "+channel[1]+" resumed") {
		t.Fatalf("second run did not resume channel %s:\n%s", channel[1], b)
	}
	stopped = regexp.MustCompile(`stopped: (\d+) txs committed`).FindStringSubmatch(string(b))
	if stopped == nil {
		t.Fatalf("second run did not stop cleanly:\n%s", b)
	}
	if n, _ := strconv.Atoi(stopped[1]); n == 0 {
		t.Fatalf("second run committed nothing:\n%s", b)
	}
	t.Logf("first run reached height %d; second run: %s", height, stopped[0])
}

// TestDevWorldComet runs `scraft dev --chain comet`: the world on four
// CometBFT validators in the process, read through a quorum: players'
// calls commit and a settlement executes on the BFT chain.
func TestDevWorldComet(t *testing.T) {
	p := startProc(t, "dev-comet", "dev", "--chain", "comet", "--players", "3", "--duration", "25s")
	<-p.done
	b, _ := os.ReadFile(p.log.Name())
	out := string(b)
	stopped := regexp.MustCompile(`stopped: (\d+) txs committed`).FindStringSubmatch(out)
	if stopped == nil {
		t.Fatalf("scraft dev --chain comet did not stop cleanly:\n%s", out)
	}
	if n, _ := strconv.Atoi(stopped[1]); n == 0 {
		t.Fatalf("nothing committed:\n%s", out)
	}
	var settled int
	for _, m := range regexp.MustCompile(`settled +(\d+)`).FindAllStringSubmatch(out, -1) {
		settled, _ = strconv.Atoi(m[1])
	}
	if settled == 0 {
		t.Fatalf("no settlement executed on the comet chain:\n%s", out)
	}
	t.Logf("%s; settled height %d", stopped[0], settled)
}
