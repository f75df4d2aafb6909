package main

import (
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scraft/scraft/cluster"
)

// buildInfo is scraft_build_info: 1, labelled with what `scraft version`
// prints, so a dashboard can tell which nodes run which build.
func buildInfo() prometheus.Collector {
	rev, goVersion := "", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "scraft", Name: "build_info",
		Help:        "1, labelled with the build's version, VCS revision and Go version.",
		ConstLabels: prometheus.Labels{"version": version, "revision": rev, "goversion": goVersion}})
	g.Set(1)
	return g
}

// channelStates reports, when scraped, each hosted channel's Raft state and
// whether this node leads it: scraft_leading{channel} (1 when this node
// signs the channel's batches) and scraft_raft_state{channel,state} (1 for
// the state Raft is in, 0 for the others).
type channelStates struct {
	node    *cluster.Node
	leading *prometheus.Desc
	state   *prometheus.Desc
}

var raftStates = []string{"Follower", "Candidate", "Leader", "Shutdown"}

func newChannelStates(n *cluster.Node) *channelStates {
	return &channelStates{
		node: n,
		leading: prometheus.NewDesc("scraft_leading", "1 when this node leads the channel (signs its batches), else 0.",
			[]string{"channel"}, nil),
		state: prometheus.NewDesc("scraft_raft_state", "1 for the Raft state the channel's server is in, 0 for the others.",
			[]string{"channel", "state"}, nil),
	}
}

func (c *channelStates) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.leading
	ch <- c.state
}

func (c *channelStates) Collect(ch chan<- prometheus.Metric) {
	for _, channel := range c.node.Channels() {
		st := channel.Status()
		id := st.Channel.String()
		leading := 0.0
		if st.Leading {
			leading = 1
		}
		ch <- prometheus.MustNewConstMetric(c.leading, prometheus.GaugeValue, leading, id)
		for _, s := range raftStates {
			v := 0.0
			if st.RaftState == s {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, id, s)
		}
	}
}
