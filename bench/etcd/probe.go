package main

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// nodeProbe watches the scraft node processes a BenchmarkCommit run
// starts, from outside: once a second each node's CPU time (/proc) and,
// from its admin listener's /metrics, whether it leads and how many
// entries it has applied. From the seconds at full load it gives the
// leader's and the followers' CPU per committed tx, which the benchmark
// reports only for the three nodes together.
type nodeProbe struct {
	parent int // the benchmark's pid; the nodes are its children
	hc     *http.Client
	ticks  []map[int]nodeSample
}

type nodeSample struct {
	at      time.Time
	cpu     time.Duration
	entries float64 // scraft_entries_applied_total, all channels
	leading bool    // scraft_leading
}

func newNodeProbe(parent int) *nodeProbe {
	return &nodeProbe{parent: parent, hc: &http.Client{Timeout: 500 * time.Millisecond}}
}

// run samples every second until ctx ends.
func (p *nodeProbe) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		tick := map[int]nodeSample{}
		for pid, admin := range p.nodes() {
			s, ok := p.sample(ctx, pid, admin)
			if ok {
				tick[pid] = s
			}
		}
		p.ticks = append(p.ticks, tick)
	}
}

// nodes returns the parent's children that run `scraft node`, with their
// admin addresses.
func (p *nodeProbe) nodes() map[int]string {
	out := map[int]string{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		// Fields after the command name: state, then the parent's pid.
		fs := strings.Fields(string(b[i+1:]))
		if len(fs) < 2 || fs[1] != strconv.Itoa(p.parent) {
			continue
		}
		dir := filepath.Dir(f)
		cmd, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
		if len(args) < 2 || args[1] != "node" {
			continue
		}
		for j := range args[:len(args)-1] {
			if args[j] == "--admin" {
				pid, _ := strconv.Atoi(filepath.Base(dir))
				out[pid] = args[j+1]
			}
		}
	}
	return out
}

func (p *nodeProbe) sample(ctx context.Context, pid int, admin string) (nodeSample, bool) {
	s := nodeSample{at: time.Now(), cpu: processCPU(pid)}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/metrics", nil)
	if err != nil {
		return s, false
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return s, false
	}
	defer resp.Body.Close()
	seen := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, rest, _ := strings.Cut(line, "{")
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		switch name {
		case "scraft_entries_applied_total":
			s.entries += v
			seen = true
		case "scraft_leading":
			s.leading = s.leading || v == 1
		}
	}
	return s, seen && s.cpu > 0
}

// perTx returns the leader's CPU per committed tx and the followers'
// (each, on average), in µs, over the seconds in which the leader applied
// at least half its best second's rate: the steady load, without the
// clients' joins, the warm-up or the teardown. Zero when no such second
// was seen with one leader throughout.
func (p *nodeProbe) perTx() (leader, follower float64) {
	type interval struct {
		rate              float64
		txs               float64
		leaderCPU, others time.Duration
		followers         int
	}
	var ivs []interval
	best := 0.0
	for k := 1; k < len(p.ticks); k++ {
		prev, cur := p.ticks[k-1], p.ticks[k]
		if len(cur) == 0 || len(prev) != len(cur) {
			continue
		}
		var iv interval
		lead := 0
		for pid, c := range cur {
			b, ok := prev[pid]
			if !ok {
				lead = -1
				break
			}
			d := c.cpu - b.cpu
			if c.leading && b.leading {
				lead++
				iv.leaderCPU = d
				iv.txs = c.entries - b.entries
				iv.rate = iv.txs / c.at.Sub(b.at).Seconds()
			} else {
				iv.others += d
				iv.followers++
			}
		}
		if lead != 1 || iv.txs <= 0 {
			continue
		}
		best = max(best, iv.rate)
		ivs = append(ivs, iv)
	}
	var txs float64
	var lc, oc time.Duration
	followers := 0
	for _, iv := range ivs {
		if iv.rate < best/2 {
			continue
		}
		txs += iv.txs
		lc += iv.leaderCPU
		oc += iv.others
		followers = iv.followers
	}
	if txs == 0 {
		return 0, 0
	}
	leader = float64(lc.Microseconds()) / txs
	if followers > 0 {
		follower = float64(oc.Microseconds()) / txs / float64(followers)
	}
	return leader, follower
}
