package integration

import (
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/settlement/contract"
)

// TestCometChannel runs a 3-node chat channel on a settlement chain of
// four CometBFT validator processes that the nodes read through a quorum
// (--chain lists every validator): writes commit; one validator killed
// with SIGKILL, the chain and the channel go on and the validator catches
// up when restarted; the leader node killed, another node claims on the
// BFT chain and writes resume; every acknowledged write is on every node.
func TestCometChannel(t *testing.T) {
	pc := newProcClusterSpec(t, 3, 0, clusterSpec{contract: "chat", validators: 4,
		config: contract.ChannelConfig{SettleEveryTxs: 1 << 62}})
	l := pc.startLoad(pc.nodeKeys())
	progress := func(what string) {
		t.Helper()
		before := l.count()
		testutil.Eventually(t, 60*time.Second, what, func() bool { return l.count() >= before+20 })
	}
	progress("writes on a comet chain")

	v := pc.validators[3]
	v.kill()
	progress("writes with a validator down")
	v.start(t)
	progress("writes with the validator back")

	old := pc.waitLeader(30 * time.Second)
	start := time.Now()
	old.p.kill()
	next := pc.waitOtherLeader(old, 60*time.Second)
	progress("writes after the leader's crash")
	t.Logf("leader %s killed; %s leads after %s", old.addr, next.addr, time.Since(start).Round(time.Millisecond))
	pc.restart(old)
	pc.waitVoters(3, 60*time.Second)
	acks := l.end()
	pc.checkAcked(acks, pc.nodes, 60*time.Second)
}
