package cluster

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/protocol"
)

// metrics are the node's Prometheus metrics, labelled by channel.
type metrics struct {
	committed     *prometheus.CounterVec
	commitLatency *prometheus.HistogramVec
	commitBatch   *prometheus.HistogramVec
	batchSize     *prometheus.HistogramVec
	applyLag      *prometheus.GaugeVec
	height        *prometheus.GaugeVec
	epoch         *prometheus.GaugeVec
	leaderStarts  *prometheus.CounterVec
	settled       *prometheus.GaugeVec
	gas           *prometheus.CounterVec
	evidence      *prometheus.CounterVec
	busy          *prometheus.CounterVec
	forwardSize   *prometheus.HistogramVec
	chainWaits    *prometheus.GaugeVec
	chainReads    *prometheus.CounterVec
	feedResumes   prometheus.Counter
	settlements   *prometheus.CounterVec
	votes         *prometheus.CounterVec
	punishments   *prometheus.CounterVec
	complaints    *prometheus.CounterVec
	elections     *prometheus.CounterVec
	snapshots     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	lbl := []string{"channel"}
	m := &metrics{
		committed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "scraft", Name: "entries_applied_total", Help: "Entries (txs and system txs) applied."}, lbl),
		commitLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "scraft", Name: "tx_commit_seconds", Help: "Time from a tx reaching the leader to its outcome.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, lbl),
		commitBatch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "scraft", Name: "batch_commit_seconds", Help: "Time from raft.Apply of a batch to its application.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, lbl),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "scraft", Name: "batch_entries", Help: "Entries per batch the leader signs.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12)}, lbl),
		applyLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "scraft", Name: "apply_lag_entries", Help: "Raft commit index minus applied index."}, lbl),
		height: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "scraft", Name: "height", Help: "Last applied height."}, lbl),
		epoch: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "scraft", Name: "leader_epoch", Help: "The chain's leader epoch of the channel."}, lbl),
		leaderStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "scraft", Name: "leader_starts_total", Help: "Times this node started leading (failovers and transfers)."}, lbl),
		settled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "scraft", Name: "settled_height", Help: "The chain's settled height of the channel."}, lbl),
		gas: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "scraft", Name: "gas_used_total", Help: "Gas used by applied entries."}, lbl),
		evidence: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "scraft", Name: "evidence_total", Help: "Leader faults recorded by this member."}, lbl),
		busy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "scraft", Name: "busy_total", Help: "Txs refused because the leader's queue was full."}, lbl),
		forwardSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "scraft", Name: "forward_txs", Help: "Txs per request a follower forwards to the leader.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10)}, lbl),
		chainWaits: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "scraft", Name: "chain_waits",
			Help: "Applies waiting for the chain to decide an entry or a batch's leader (a batch of an epoch, join or leave the chain has not reached yet)."}, lbl),
		chainReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "scraft", Name: "chain_view_reads_total",
			Help: "Reads of the channel's record into its chain view (on the chain feed's news of the channel, a resync, a Raft leadership gain, a leader's own change)."}, lbl),
		feedResumes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "scraft", Name: "chain_feed_resumes_total",
			Help: "Times the node's chain event stream was opened again after a break."}),
	}
	m.settlements = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "scraft", Name: "settlements_total",
		Help: "Settlement proposals this node, as leader, proposed, saw executed or abandoned."}, []string{"channel", "what"})
	m.votes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "scraft", Name: "settlement_votes_total",
		Help: "This member's votes on settlement proposals, by option (for, against, abstain)."}, []string{"channel", "vote"})
	m.punishments = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "scraft", Name: "punishments_total",
		Help: "Punish cases as this member saw them: filed, executed, its votes (vote_for, vote_against, vote_abstain), diverged (its own case failed), resynced (it then restored the members' settled state), resync_failed (its execution differs from every member's snapshot)."}, []string{"channel", "what"})
	m.complaints = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "scraft", Name: "complaints_answered_total",
		Help: "Censorship complaints against this member that it answered, by answer (included, nonce_used, left)."}, []string{"channel", "answer"})
	m.elections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "scraft", Name: "elections_total",
		Help: "Leader-election proposals this member filed, voted on or executed, by what (filed, for, against, executed)."}, []string{"channel", "what"})
	m.snapshots = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "scraft", Name: "snapshots_total",
		Help: "Snapshots this member restored or refused, by result (restored, fetched, forged, unverifiable)."}, []string{"channel", "result"})
	if reg != nil {
		reg.MustRegister(m.punishments)
		reg.MustRegister(m.committed, m.commitLatency, m.commitBatch, m.batchSize, m.applyLag, m.height,
			m.epoch, m.leaderStarts, m.settled, m.gas, m.evidence, m.busy, m.forwardSize, m.chainWaits,
			m.chainReads, m.feedResumes, m.settlements, m.votes, m.complaints, m.elections, m.snapshots)
	}
	return m
}

// channelMetrics are one channel's series.
type channelMetrics struct {
	committed     prometheus.Counter
	commitLatency prometheus.Observer
	commitBatch   prometheus.Observer
	batchSize     prometheus.Observer
	applyLag      prometheus.Gauge
	height        prometheus.Gauge
	epoch         prometheus.Gauge
	failovers     prometheus.Counter
	settled       prometheus.Gauge
	gas           prometheus.Counter
	evidence      prometheus.Counter
	busy          prometheus.Counter
	forwardSize   prometheus.Observer
	chainWaits    prometheus.Gauge
	chainReads    prometheus.Counter
	// settlements counts by what (proposed, executed, abandoned); votes
	// by option.
	settlements *prometheus.CounterVec
	votes       *prometheus.CounterVec
	// punishments counts punish cases by what (punish.go).
	punishments *prometheus.CounterVec
	// complaints counts answered complaints by answer; elections the
	// election work by what.
	complaints *prometheus.CounterVec
	elections  *prometheus.CounterVec
	// snapshots counts restored and refused snapshots by result.
	snapshots *prometheus.CounterVec
}

func (m *metrics) forChannel(id protocol.ChannelID) *channelMetrics {
	l := id.String()
	return &channelMetrics{
		committed:     m.committed.WithLabelValues(l),
		commitLatency: m.commitLatency.WithLabelValues(l),
		commitBatch:   m.commitBatch.WithLabelValues(l),
		batchSize:     m.batchSize.WithLabelValues(l),
		applyLag:      m.applyLag.WithLabelValues(l),
		height:        m.height.WithLabelValues(l),
		epoch:         m.epoch.WithLabelValues(l),
		failovers:     m.leaderStarts.WithLabelValues(l),
		settled:       m.settled.WithLabelValues(l),
		gas:           m.gas.WithLabelValues(l),
		evidence:      m.evidence.WithLabelValues(l),
		busy:          m.busy.WithLabelValues(l),
		forwardSize:   m.forwardSize.WithLabelValues(l),
		chainWaits:    m.chainWaits.WithLabelValues(l),
		chainReads:    m.chainReads.WithLabelValues(l),
		settlements:   m.settlements.MustCurryWith(prometheus.Labels{"channel": l}),
		votes:         m.votes.MustCurryWith(prometheus.Labels{"channel": l}),
		punishments:   m.punishments.MustCurryWith(prometheus.Labels{"channel": l}),
		complaints:    m.complaints.MustCurryWith(prometheus.Labels{"channel": l}),
		elections:     m.elections.MustCurryWith(prometheus.Labels{"channel": l}),
		snapshots:     m.snapshots.MustCurryWith(prometheus.Labels{"channel": l}),
	}
}

func (m *channelMetrics) observeApplied(b *protocol.Batch, a *fsm.Applied) {
	m.committed.Add(float64(len(a.Outcomes)))
	var gas uint64
	for i := range a.Outcomes {
		gas += a.Outcomes[i].Result.GasUsed
	}
	m.gas.Add(float64(gas))
	m.height.Set(float64(b.LastHeight()))
}

// machineCollector exports each hosted channel's machine counters
// (fsm.Stats, as last published by its applier) when scraped, so that the
// apply path keeps no Prometheus series of its own for them.
type machineCollector struct {
	n                                 *Node
	applied, reused, refused, dropped *prometheus.Desc
}

func newMachineCollector(n *Node) *machineCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("scraft_"+name, help, []string{"channel"}, nil)
	}
	return &machineCollector{
		n:       n,
		applied: desc("batches_applied_total", "Batches the channel's machine applied."),
		reused:  desc("batches_reused_total", "Batches applied from this node's own speculative proposal (leader)."),
		refused: desc("batches_refused_total", "Batches the channel's machine refused (evidence against their leader)."),
		dropped: desc("proposals_dropped_total", "Speculative proposals dropped because another batch came first."),
	}
}

func (mc *machineCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- mc.applied
	ch <- mc.reused
	ch <- mc.refused
	ch <- mc.dropped
}

func (mc *machineCollector) Collect(ch chan<- prometheus.Metric) {
	for _, c := range mc.n.Channels() {
		s := c.fsm.summary.Load()
		if s == nil {
			continue
		}
		l := c.id.String()
		ch <- prometheus.MustNewConstMetric(mc.applied, prometheus.CounterValue, float64(s.stats.BatchesApplied), l)
		ch <- prometheus.MustNewConstMetric(mc.reused, prometheus.CounterValue, float64(s.stats.BatchesReused), l)
		ch <- prometheus.MustNewConstMetric(mc.refused, prometheus.CounterValue, float64(s.stats.BatchesRefused), l)
		ch <- prometheus.MustNewConstMetric(mc.dropped, prometheus.CounterValue, float64(s.stats.PendingDropped), l)
	}
}
