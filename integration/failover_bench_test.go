package integration

import (
	"bufio"
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
)

// logTimeLayout is how hclog stamps a line of a node's log.
const logTimeLayout = "2006-01-02T15:04:05.000Z0700"

// logLine is one stamped line of a node's log.
type logLine struct {
	at   time.Time
	node string
	text string
}

// nodeLogs returns the lines of the nodes' logs stamped at or after since
// (a restarted node appends to the log of its first run).
func (pc *procCluster) nodeLogs(b testing.TB, since time.Time) []logLine {
	b.Helper()
	var lines []logLine
	for _, nd := range pc.nodes {
		f, err := os.Open(nd.p.log.Name())
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			text := sc.Text()
			stamp, _, ok := strings.Cut(text, " ")
			if !ok {
				continue
			}
			at, err := time.Parse(logTimeLayout, stamp)
			// The stamp has milliseconds: a line of the same millisecond
			// as since counts.
			if err != nil || at.Before(since.Truncate(time.Millisecond)) {
				continue
			}
			lines = append(lines, logLine{at: at, node: nd.addr, text: text})
		}
		f.Close()
	}
	slices.SortStableFunc(lines, func(x, y logLine) int { return x.at.Compare(y.at) })
	return lines
}

// count returns how many lines hold text.
func count(lines []logLine, text string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l.text, text) {
			n++
		}
	}
	return n
}

// firstAt returns when the first line holding text was logged, zero if none.
func firstAt(lines []logLine, text string) time.Time {
	for _, l := range lines {
		if strings.Contains(l.text, text) {
			return l.at
		}
	}
	return time.Time{}
}

// failoverSteps is where the time of one failover went, from the nodes'
// logs: the kill, a follower's heartbeat timeout (detection), the Raft
// election won, the chain's leadership claimed, the batcher started, and
// the first write sent after the kill acknowledged (the clients' retries
// and the first batches).
type failoverSteps struct {
	detect, elect, claim, lead, write time.Duration
	// candidacies counts the followers' turns as Raft candidates, refused
	// the claims the chain or the attesters refused.
	candidacies, refused int
}

func failoverStepsOf(lines []logLine, killed, firstWrite time.Time) failoverSteps {
	detected := firstAt(lines, "heartbeat timeout reached")
	elected := firstAt(lines, "entering leader state")
	claimed := firstAt(lines, "claimed leadership")
	leading := firstAt(lines, ": leading: ")
	since := func(from, to time.Time) time.Duration {
		if from.IsZero() || to.IsZero() {
			return -1
		}
		return to.Sub(from)
	}
	return failoverSteps{
		detect:      since(killed, detected),
		elect:       since(detected, elected),
		claim:       since(elected, claimed),
		lead:        since(claimed, leading),
		write:       since(leading, firstWrite),
		candidacies: count(lines, "entering candidate state"),
		refused:     count(lines, "leader claim refused"),
	}
}

// report logs one failover's steps and reports the medians of all.
func reportFailoverSteps(b *testing.B, steps []failoverSteps) {
	median := func(get func(failoverSteps) time.Duration) float64 {
		var ds []time.Duration
		for _, s := range steps {
			if d := get(s); d >= 0 {
				ds = append(ds, d)
			}
		}
		if len(ds) == 0 {
			return -1
		}
		slices.Sort(ds)
		return float64(ds[len(ds)/2].Microseconds()) / 1000
	}
	b.ReportMetric(median(func(s failoverSteps) time.Duration { return s.detect }), "detect-ms")
	b.ReportMetric(median(func(s failoverSteps) time.Duration { return s.elect }), "elect-ms")
	b.ReportMetric(median(func(s failoverSteps) time.Duration { return s.claim }), "claim-ms")
	b.ReportMetric(median(func(s failoverSteps) time.Duration { return s.lead }), "lead-ms")
	b.ReportMetric(median(func(s failoverSteps) time.Duration { return s.write }), "write-ms")
	var cand, refused int
	for _, s := range steps {
		cand += s.candidacies
		refused += s.refused
	}
	b.ReportMetric(float64(cand)/float64(len(steps)), "candidacies/kill")
	b.ReportMetric(float64(refused)/float64(len(steps)), "refused-claims/kill")
}

func (s failoverSteps) String() string {
	ms := func(d time.Duration) string {
		if d < 0 {
			return "?"
		}
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
	return "detection " + ms(s.detect) + ", election " + ms(s.elect) + ", claim " + ms(s.claim) +
		", leading " + ms(s.lead) + ", first write " + ms(s.write) +
		", candidacies " + strconv.Itoa(s.candidacies) + ", refused claims " + strconv.Itoa(s.refused)
}

// BenchmarkLeaderStability runs the channel under full load, with no
// fault, for SCRAFT_BENCH_SECONDS (default 10; 600 for the ten minutes
// the failover settings are judged by) and counts the leader changes and
// elections the nodes logged meanwhile: short Raft timeouts must not
// depose a leader that is only busy. SCRAFT_BENCH_CLIENTS sets the
// clients (default 256, each with its own connections).
func BenchmarkLeaderStability(b *testing.B) {
	clients := 256
	if s, err := strconv.Atoi(os.Getenv("SCRAFT_BENCH_CLIENTS")); err == nil && s > 0 {
		clients = s
	}
	pc := newProcCluster(b, 3, clients)
	// The users run no node: unless they vote, no settlement reaches 2/3,
	// and the leader stops ordering calls once the unsettled suffix passes
	// its hard bound (some 40,000 heights in).
	stopVoting := pc.usersVote(pc.users)
	defer stopVoting()
	l := pc.startLoad(pc.users)
	testutil.Eventually(b, 60*time.Second, "warm-up", func() bool { return l.count() >= 2*clients })
	leader := pc.waitLeader(30 * time.Second)
	from := l.count()
	start := time.Now()
	<-time.After(benchSeconds()) // the measurement window
	elapsed := time.Since(start)
	acked := l.count() - from
	lines := pc.nodeLogs(b, start)
	l.end()
	changes := count(lines, "entering leader state")
	b.ReportMetric(float64(acked)/elapsed.Seconds(), "tx/s")
	b.ReportMetric(float64(stopVoting()), "settlements-voted")
	b.ReportMetric(float64(changes), "leader-changes")
	b.ReportMetric(float64(count(lines, "entering candidate state")), "candidacies")
	b.ReportMetric(float64(count(lines, "failed to contact")), "lease-misses")
	b.Logf("%s under %d clients: %d acknowledged, leader %s; leader changes %d, candidacies %d, step-downs %d",
		elapsed.Round(time.Second), clients, acked, leader.addr, changes, count(lines, "entering candidate state"),
		count(lines, "stepping down"))
	if changes > 0 {
		for _, ln := range lines {
			if strings.Contains(ln.text, "entering leader state") || strings.Contains(ln.text, "entering candidate state") ||
				strings.Contains(ln.text, "heartbeat timeout reached") || strings.Contains(ln.text, "failed to contact") {
				b.Log(ln.text)
			}
		}
		b.Errorf("%d leader changes under load without a fault", changes)
	}
}

// usersVote has every one of users vote for each settlement proposal of
// the channel as it opens, as members that run no node but trust the
// channel would, until the returned stop is called. It returns how many
// proposals it voted on.
func (pc *procCluster) usersVote(users []*protocol.Key) (stop func() int) {
	ctx, cancel := context.WithCancel(context.Background())
	watcher := pc.dialChain(users[0])
	voters := make([]*devchain.Client, len(users))
	for i, u := range users {
		voters[i] = pc.dialChain(u)
	}
	var voted int
	done := make(chan struct{})
	go func() {
		defer close(done)
		next := uint64(1)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			info, err := watcher.Channel(ctx, pc.id)
			if err != nil {
				continue
			}
			for ; next <= info.LastProposal && ctx.Err() == nil; next++ {
				p, err := watcher.Proposal(ctx, pc.id, next)
				if err != nil {
					break // again at the next tick
				}
				if p.Kind != protocol.ProposalSettlement || p.Status != contract.ProposalOpen {
					continue
				}
				work := make(chan *devchain.Client)
				var wg sync.WaitGroup
				for range 16 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for v := range work {
							v.Vote(ctx, pc.id, p.ID, protocol.VoteFor) // a vote after the pass is refused: fine
						}
					}()
				}
				for _, v := range voters {
					work <- v
				}
				close(work)
				wg.Wait()
				voted++
			}
		}
	}()
	return func() int {
		cancel()
		<-done
		return voted
	}
}
