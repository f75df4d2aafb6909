package integration

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestSoakDrillFaults runs `scraft drill failover --local` with the four
// faults it can inject in turn (the leader and a follower, crashed and
// restarted or stopped and continued): each round reports its fault and
// victim, no acknowledged write is lost and the digests agree.
func TestSoakDrillFaults(t *testing.T) {
	faults := []string{"crash-leader", "stop-follower", "stop-leader", "crash-follower"}
	// No gap is too long here (--max-gap): figures are the benchmarks'.
	out, err := exec.Command(scraftBin, "drill", "failover", "--local", "--rounds", "4", "--faults", strings.Join(faults, ","),
		"--max-gap", "10m", "--json").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("scraft drill failover --local --faults: %v\n%s%s", err, out, stderr)
	}
	var rep struct {
		Rounds []struct {
			Fault        string  `json:"fault"`
			Victim       string  `json:"victim"`
			LeaderBefore string  `json:"leader_before"`
			LeaderAfter  string  `json:"leader_after"`
			GapMs        float64 `json:"gap_ms"`
			Writes       int     `json:"writes"`
		} `json:"rounds"`
		Acked        int  `json:"acked"`
		Lost         int  `json:"lost"`
		DigestsAgree bool `json:"digests_agree"`
		OK           bool `json:"ok"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("drill report: %v\n%s", err, out)
	}
	t.Logf("drill: %s", out)
	if len(rep.Rounds) != len(faults) || rep.Acked == 0 || rep.Lost != 0 || !rep.DigestsAgree || !rep.OK {
		t.Fatalf("drill report: %+v", rep)
	}
	for i, r := range rep.Rounds {
		leader := strings.HasSuffix(faults[i], "-leader")
		switch {
		case r.Fault != faults[i]:
			t.Errorf("round %d: fault %q, want %q", i+1, r.Fault, faults[i])
		case leader && r.Victim != r.LeaderBefore, !leader && r.Victim == r.LeaderBefore:
			t.Errorf("round %d: %s of %s, the leader was %s", i+1, r.Fault, r.Victim, r.LeaderBefore)
		case r.Writes == 0:
			t.Errorf("round %d: no writes", i+1)
		}
	}
}

// TestSoakDrillRefusesFaults: an unknown fault, and a stop against nodes
// the drill did not start (it cannot signal them), are refused before
// anything runs.
func TestSoakDrillRefusesFaults(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--local", "--faults", "crash-leader,pause"}, `unknown fault "pause"`},
		{[]string{"--node", "127.0.0.1:1", "--admin", "127.0.0.1:2", "--channel", "0x000000000000000000000000000000aa",
			"--faults", "stop-follower"}, "stop-follower needs --local"},
	} {
		out, err := exec.Command(scraftBin, append([]string{"drill", "failover"}, tc.args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("drill failover %v: %v\n%s\nwant an error with %q", tc.args, err, out, tc.want)
		}
	}
}
