package integration

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
)

// benchLogStores returns the Raft log stores a benchmark runs on, from
// SCRAFT_BENCH_LOG_STORE (comma-separated kinds, e.g. "bolt,wal"), else
// def; "" is the node's default.
func benchLogStores(def string) []string {
	s := os.Getenv("SCRAFT_BENCH_LOG_STORE")
	if s == "" {
		s = def
	}
	return strings.Split(s, ",")
}

// withLogStore makes the nodes the benchmark starts from now on run on
// the store kind ("" leaves the node's default) with the flags more,
// after those of SCRAFT_NODE_ARGS.
func withLogStore(b *testing.B, kind string, more ...string) {
	args := strings.Fields(os.Getenv("SCRAFT_NODE_ARGS"))
	if kind != "" {
		args = append(args, "--log-store", kind)
	}
	b.Setenv("SCRAFT_NODE_ARGS", strings.Join(append(args, more...), " "))
}

// commitCase is one BenchmarkCommit run.
type commitCase struct {
	clients int
	pooled  bool
	store   string // the Raft log store; "" is the node's default
}

// commitCases are BenchmarkCommit's runs: 64 and 256 clients on their
// own connections and pooled, on each store of SCRAFT_BENCH_LOG_STORE.
func commitCases() []commitCase {
	var out []commitCase
	for _, store := range benchLogStores("") {
		for _, c := range []commitCase{{64, false, store}, {256, false, store}, {64, true, store}, {256, true, store}} {
			out = append(out, c)
		}
	}
	return out
}

func (c commitCase) name() string {
	name := "clients=" + strconv.Itoa(c.clients) + "/conns=own"
	if c.pooled {
		name = "clients=" + strconv.Itoa(c.clients) + "/conns=pooled"
	}
	if c.store != "" {
		name = "store=" + c.store + "/" + name
	}
	return name
}

// nodeCPUs returns each node process's CPU time (user + system), in
// pc.nodes order.
func (pc *procCluster) nodeCPUs() []time.Duration {
	out := make([]time.Duration, len(pc.nodes))
	for i, nd := range pc.nodes {
		out[i] = testutil.ProcessCPU(nd.p.cmd.Process.Pid)
	}
	return out
}

// reportRoleCPU reports the CPU time per committed tx of the leader's
// process and of a follower's (the mean of the followers), between the
// nodeCPUs before and now, for txs committed meanwhile: what each member
// spends when each runs on a machine of its own.
func (pc *procCluster) reportRoleCPU(b *testing.B, leader *procNode, before, now []time.Duration, txs int) {
	if txs == 0 || leader == nil {
		return
	}
	var lead, follow time.Duration
	followers := 0
	for i, nd := range pc.nodes {
		d := now[i] - before[i]
		if nd == leader {
			lead = d
			continue
		}
		follow += d
		followers++
	}
	b.ReportMetric(float64(lead.Microseconds())/float64(txs), "leader-cpu-µs/tx")
	if followers > 0 {
		b.ReportMetric(float64(follow.Microseconds())/float64(followers)/float64(txs), "follower-cpu-µs/tx")
	}
}

// window is what a load acknowledged in a measurement window.
type window struct {
	txs     int
	elapsed time.Duration
	lat     []time.Duration // sorted
}

func (w window) rate() float64 { return float64(w.txs) / w.elapsed.Seconds() }

func (w window) p(q int) time.Duration {
	if len(w.lat) == 0 {
		return 0
	}
	return w.lat[len(w.lat)*q/100]
}

// measure waits d and returns what l acknowledged meanwhile, from the
// acks numbered from on.
func measure(l *load, d time.Duration) window {
	l.mu.Lock()
	from := len(l.acks)
	l.mu.Unlock()
	start := time.Now()
	<-time.After(d) // the measurement window
	l.mu.Lock()
	acks := append([]acked(nil), l.acks[from:]...)
	l.mu.Unlock()
	w := window{elapsed: time.Since(start)}
	for _, a := range acks {
		w.lat = append(w.lat, a.latency)
	}
	w.txs = len(acks)
	slices.Sort(w.lat)
	return w
}

// storeDisk returns the disk a node's Raft log store of the channel uses:
// blocks allocated (what df sees; raft-wal preallocates its segments) and
// the files' sizes.
func (pc *procCluster) storeDisk(nd *procNode, kind string) (alloc, size int64) {
	filepath.WalkDir(pc.storeFile(nd, kind), func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		size += fi.Size()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			alloc += st.Blocks * 512
		}
		return nil
	})
	return alloc, size
}

// BenchmarkLogStore compares the Raft log stores in one run, one kind
// after the other (SCRAFT_BENCH_LOG_STORE, default "bolt,wal"), each on a
// 3-node chat channel in three processes:
//
//   - sat: 64 clients as fast as they commit: tx/s, p50/p99, and the CPU
//     per committed tx of the leader's and a follower's process;
//   - paced: the same clients at 1,000 tx/s together (SCRAFT_BENCH_RATE
//     overrides): p99 and CPU per tx;
//   - recovery: a follower is killed (SIGKILL) under the paced load and
//     started again 3 s later with snapshots every 1,024 entries and
//     1,024 trailing logs (--raft-snapshot-threshold, --raft-trailing-logs,
//     --raft-snapshot-interval 1s); the time from its start until it has
//     applied the height the leader had then;
//   - disk: the restarted follower's store once it has snapshotted and
//     truncated its log for 20 s of paced load, beside the leader's,
//     which runs the defaults (a snapshot every 8,192 entries, 10,240
//     trailing) and has truncated nothing yet.
//
// Each phase measures for SCRAFT_BENCH_SECONDS (default 10). With
// SCRAFT_BENCH_PROFILE=DIR the sat phase writes each node's profiles
// there (as BenchmarkCommit does) and logs which node led.
func BenchmarkLogStore(b *testing.B) {
	rate := 1000
	if r, err := strconv.Atoi(os.Getenv("SCRAFT_BENCH_RATE")); err == nil && r > 0 {
		rate = r
	}
	compact := []string{"--raft-snapshot-threshold", "1024", "--raft-trailing-logs", "1024", "--raft-snapshot-interval", "1s"}
	for _, kind := range benchLogStores("bolt,wal") {
		b.Run("store="+kind, func(b *testing.B) {
			withLogStore(b, kind)
			pc := newProcCluster(b, 3, 64)

			b.Run("sat", func(b *testing.B) {
				l := pc.startLoad(pc.users)
				testutil.Eventually(b, 60*time.Second, "warm-up", func() bool { return l.count() >= 2*len(pc.users) })
				leader, cpu0 := pc.leader(), pc.nodeCPUs()
				profiles := pc.profile(b, benchSeconds())
				w := measure(l, benchSeconds())
				pc.reportRoleCPU(b, leader, cpu0, pc.nodeCPUs(), w.txs)
				l.end()
				profiles()
				if leader != nil {
					b.Logf("leader: node-%d", slices.Index(pc.nodes, leader))
				}
				b.ReportMetric(w.rate(), "tx/s")
				b.ReportMetric(float64(w.p(50).Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(w.p(99).Microseconds())/1000, "p99-ms")
			})

			l := pc.startPacedLoad(pc.users, rate, nil)
			defer l.end()
			testutil.Eventually(b, 60*time.Second, "warm-up", func() bool { return l.count() >= 2*len(pc.users) })
			b.Run("paced", func(b *testing.B) {
				leader, cpu0 := pc.leader(), pc.nodeCPUs()
				w := measure(l, benchSeconds())
				pc.reportRoleCPU(b, leader, cpu0, pc.nodeCPUs(), w.txs)
				b.ReportMetric(w.rate(), "tx/s")
				b.ReportMetric(float64(w.p(99).Microseconds())/1000, "p99-ms")
			})

			leader := pc.waitLeader(10 * time.Second)
			f := pc.others(leader)[0]
			b.Run("recovery", func(b *testing.B) {
				st0, err := f.status(pc.id)
				if err != nil {
					b.Fatal(err)
				}
				f.p.kill()
				<-time.After(3 * time.Second) // the follower falls behind under load
				st, err := leader.status(pc.id)
				if err != nil {
					b.Fatal(err)
				}
				f.p.args = append(f.p.args, compact...)
				start := time.Now()
				pc.restart(f)
				testutil.WaitFor(b, 60*time.Second, func() error {
					cur, err := f.status(pc.id)
					if err != nil {
						return err
					}
					if cur.Height < st.Height {
						return errorf("follower at height %d, the leader was at %d", cur.Height, st.Height)
					}
					return nil
				})
				b.ReportMetric(float64(time.Since(start).Milliseconds()), "recovery-ms")
				b.ReportMetric(float64(st.Height-st0.Height), "behind-heights")
			})

			b.Run("disk", func(b *testing.B) {
				<-time.After(2 * benchSeconds()) // paced load: the follower snapshots and truncates
				falloc, fsize := pc.storeDisk(f, kind)
				lalloc, lsize := pc.storeDisk(leader, kind)
				b.ReportMetric(float64(falloc)/(1<<20), "compacted-alloc-MiB")
				b.ReportMetric(float64(fsize)/(1<<20), "compacted-size-MiB")
				b.ReportMetric(float64(lalloc)/(1<<20), "leader-alloc-MiB")
				b.ReportMetric(float64(lsize)/(1<<20), "leader-size-MiB")
				if st, err := leader.status(pc.id); err == nil {
					b.ReportMetric(float64(st.Height), "height")
				}
			})
		})
	}
}
