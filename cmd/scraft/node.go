package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/scraft/scraft/cluster"
	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
	"github.com/scraft/scraft/transport"
	"github.com/scraft/scraft/vm"
)

func init() {
	rootCmd.AddCommand(nodeCmd())
}

// nodeOptions is everything a node process is started with.
type nodeOptions struct {
	DataDir   string
	Listen    string
	Advertise string
	Admin     string
	Key       *protocol.Key
	Chain     cluster.Chain
	Logger    hclog.Logger
	// Channels are opened at start; with Peers the node joins them through
	// those member nodes.
	Channels []protocol.ChannelID
	Peers    []string
	UsePool  bool
	// Tune adjusts the cluster configuration after flags (tests, dev).
	Tune func(*cluster.Config)
}

func nodeCmd() *cobra.Command {
	var (
		data, listen, advertise, chainAddr, keyFile, admin, logLevel string
		channels, peers                                              []string
		logJSON, usePool                                             bool
		batchTxs, inFlight                                           int
		batchDelay, heartbeat, election, lease, commitTimeout        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "node --data DIR --listen ADDR --chain ADDR --key FILE",
		Short: "Run a node: host the channels this member belongs to",
		Long: `Run a node. It hosts every channel that has data under DIR/channels (a
restarted node comes back with its data and catches up), and the channels
named with --channel. The node publishes its address (--advertise, else
--listen) on its member record on chain, where the other members' nodes find
it. Without --peer, a new channel is bootstrapped here when this node wins the
first claim on chain; when another member leads (or claimed first), the node
joins that member's node at the address the chain lists. With --peer the node
never bootstraps: it joins through the named member nodes, or any the chain
lists, and waits until one adds it. Nodes may start in any order.

One gRPC port (--listen) serves the Raft traffic of every channel, the peer
API and the client API. --admin serves /metrics, /healthz, /readyz,
/status, /digest?channel=ID&height=H, /debug/pprof and
POST /join?channel=ID&peer=ADDR (see scraft join).
SIGINT or SIGTERM stops the node cleanly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger := newLogger("scraft", logLevel, logJSON)
			key, err := protocol.LoadKey(keyFile)
			if err != nil {
				return err
			}
			chain, err := devchain.Dial(chainAddr, key)
			if err != nil {
				return fmt.Errorf("chain %s: %w", chainAddr, err)
			}
			defer chain.Close()
			opts := nodeOptions{
				DataDir: data, Listen: listen, Advertise: advertise, Admin: admin,
				Key: key, Chain: chain, Logger: logger, Peers: peers, UsePool: usePool,
				Tune: func(c *cluster.Config) {
					c.BatchMaxTxs, c.BatchMaxDelay, c.MaxInFlight = batchTxs, batchDelay, inFlight
					c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = heartbeat, election, lease
					c.CommitTimeout = commitTimeout
				},
			}
			for _, s := range channels {
				id, err := protocol.ParseChannelID(s)
				if err != nil {
					return err
				}
				opts.Channels = append(opts.Channels, id)
			}
			ctx := cmd.Context()
			n, err := startNode(ctx, opts)
			if err != nil {
				return err
			}
			logger.Info("node running", "address", key.Address(), "listen", n.srv.Addr(), "admin", n.adminAddr())
			<-ctx.Done()
			logger.Info("stopping")
			return n.Close()
		},
	}
	d := cluster.DefaultConfig()
	f := cmd.Flags()
	f.StringVar(&data, "data", "", "data folder: DIR/channels/<id>/ holds each channel's raft.db and snapshots (required)")
	f.StringVar(&listen, "listen", "127.0.0.1:7500", "gRPC address: Raft, peer API and client API")
	f.StringVar(&advertise, "advertise", "", "address peers reach this node at, published on chain (default: the listen address; required when --listen binds every interface)")
	f.StringVar(&chainAddr, "chain", "127.0.0.1:7400", "settlement chain gRPC address (its --listen)")
	f.StringVar(&keyFile, "key", "", "member key file (see scraft keygen) (required)")
	f.StringVar(&admin, "admin", "", "admin HTTP address for /metrics, /healthz, /readyz, /status, /debug/pprof (default: none)")
	f.StringSliceVar(&channels, "channel", nil, "channel id to host at start (repeatable)")
	f.StringSliceVar(&peers, "peer", nil, "gRPC address of a member node to join --channel through (repeatable); a node given --peer never bootstraps a channel")
	f.BoolVar(&usePool, "pool", false, "when joining a channel on chain, back it with the shared pool deposit")
	f.BoolVar(&logJSON, "log-json", false, "log JSON lines instead of text")
	f.StringVar(&logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	f.IntVar(&batchTxs, "batch-max-txs", d.BatchMaxTxs, "most txs in one leader batch")
	f.DurationVar(&batchDelay, "batch-max-delay", d.BatchMaxDelay, "how long the leader waits to fill a batch")
	f.IntVar(&inFlight, "batch-in-flight", d.MaxInFlight, "most leader batches in Raft at once (the next fills while these commit)")
	f.DurationVar(&heartbeat, "raft-heartbeat-timeout", d.HeartbeatTimeout, "Raft heartbeat timeout")
	f.DurationVar(&election, "raft-election-timeout", d.ElectionTimeout, "Raft election timeout")
	f.DurationVar(&lease, "raft-leader-lease-timeout", d.LeaderLeaseTimeout, "Raft leader lease timeout")
	f.DurationVar(&commitTimeout, "raft-commit-timeout", d.CommitTimeout, "how long an idle Raft leader waits before telling followers the commit index")
	cmd.MarkFlagRequired("data")
	cmd.MarkFlagRequired("key")
	return cmd
}

func newLogger(name, level string, json bool) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      hclog.LevelFromString(level),
		JSONFormat: json,
		Output:     os.Stderr,
	})
}

// runningNode is one node's parts, closed in order by Close.
type runningNode struct {
	opts    nodeOptions
	srv     *transport.Server
	node    *cluster.Node
	client  *transport.ClientService
	engine  *vm.Engine
	reg     *prometheus.Registry
	admin   *http.Server
	adminLn net.Listener
	wg      sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// startNode starts a node: the gRPC server, the VM, the cluster node with
// its channels, the client API and the admin listener.
func startNode(ctx context.Context, o nodeOptions) (_ *runningNode, err error) {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	r := &runningNode{opts: o, reg: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	r.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, err
	}
	r.engine, err = vm.NewEngine(ctx, vm.Config{CompilationCacheDir: filepath.Join(o.DataDir, "wasm-cache")})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, err
	}
	tcfg := transport.DefaultConfig()
	tcfg.AdvertiseAddr = o.Advertise
	tcfg.Logger = o.Logger
	r.srv, err = transport.NewServer(ln, tcfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	// The address is published on chain for the other members' nodes to
	// dial: an unspecified IP (--listen 0.0.0.0:7500) reaches nobody.
	if err := contract.ValidNodeAddress(r.srv.Addr()); err != nil {
		return nil, fmt.Errorf("node address %q (--advertise, else --listen) cannot be published for other nodes to dial; set --advertise to the host:port they reach: %w", r.srv.Addr(), err)
	}
	ccfg := cluster.DefaultConfig()
	ccfg.DataDir = o.DataDir
	ccfg.Key = o.Key
	ccfg.Address = r.srv.Addr()
	ccfg.Chain = o.Chain
	ccfg.Executors = vmExecutors(r.engine)
	ccfg.RaftTransport = func(id string) (raft.Transport, error) { return r.srv.Transport(id) }
	ccfg.Dial = r.srv.Conn
	ccfg.Logger = o.Logger
	ccfg.Registerer = r.reg
	if o.Tune != nil {
		o.Tune(&ccfg)
	}
	r.node, err = cluster.NewNode(ccfg)
	if err != nil {
		return nil, err
	}
	r.node.Register(r.srv.GRPC())
	ccl := transport.DefaultClientConfig()
	ccl.Logger = o.Logger
	r.client, err = transport.RegisterClientService(r.srv, &channelAPI{n: r.node}, ccl)
	if err != nil {
		return nil, err
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := r.srv.Serve(); err != nil {
			o.Logger.Error("grpc server stopped", "error", err)
		}
	}()
	if o.Admin != "" {
		if err := r.serveAdmin(); err != nil {
			return nil, err
		}
	}
	if err := r.node.Start(ctx); err != nil {
		return nil, err
	}
	for _, id := range o.Channels {
		if len(o.Peers) > 0 {
			_, err = r.node.Join(ctx, id, o.Peers, o.UsePool)
		} else {
			_, err = r.node.Open(ctx, id)
		}
		if err != nil {
			return nil, fmt.Errorf("channel %s: %w", id, err)
		}
	}
	return r, nil
}

func (r *runningNode) adminAddr() string {
	if r.adminLn == nil {
		return ""
	}
	return r.adminLn.Addr().String()
}

// Close stops the admin listener, the client API, the channels (leader work,
// Raft, stores), the gRPC server and the VM, in that order. Safe twice.
func (r *runningNode) Close() error {
	r.closeOnce.Do(func() {
		var errs []error
		if r.admin != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			errs = append(errs, r.admin.Shutdown(ctx))
			cancel()
		}
		if r.client != nil {
			errs = append(errs, r.client.Close())
		}
		if r.node != nil {
			errs = append(errs, r.node.Close())
		}
		if r.srv != nil {
			errs = append(errs, r.srv.Close())
		}
		r.wg.Wait()
		if r.engine != nil {
			errs = append(errs, r.engine.Close(context.Background()))
		}
		r.closeErr = errors.Join(errs...)
	})
	return r.closeErr
}

// serveAdmin serves /metrics, /healthz, /readyz, /status, /debug/pprof
// and POST /join.
func (r *runningNode) serveAdmin() error {
	ln, err := net.Listen("tcp", r.opts.Admin)
	if err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}
	r.adminLn = ln
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		for _, c := range r.node.Channels() {
			if st := c.Status(); !st.Ready {
				http.Error(w, fmt.Sprintf("channel %s not caught up (lag %d, leader %q)", st.Channel, st.Lag, st.RaftLeader), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		var out []cluster.Status
		for _, c := range r.node.Channels() {
			out = append(out, c.Status())
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(out)
	})
	mux.HandleFunc("/digest", func(w http.ResponseWriter, req *http.Request) {
		id, err := protocol.ParseChannelID(req.URL.Query().Get("channel"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h, err := strconv.ParseUint(req.URL.Query().Get("height"), 10, 64)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c, ok := r.node.Channel(id)
		if !ok {
			http.Error(w, "channel not hosted", http.StatusNotFound)
			return
		}
		d, ok := c.Digest(h)
		if !ok {
			http.Error(w, fmt.Sprintf("height %d not in the journal (applied %d)", h, c.Status().Height), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"height": h, "digest": d})
	})
	mux.HandleFunc("/join", func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		id, err := protocol.ParseChannelID(req.URL.Query().Get("channel"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var peers []string
		for _, p := range req.URL.Query()["peer"] {
			peers = append(peers, strings.Split(p, ",")...)
		}
		ctx, cancel := context.WithTimeout(req.Context(), time.Minute)
		defer cancel()
		var c *cluster.Channel
		if len(peers) == 0 {
			c, err = r.node.Open(ctx, id)
		} else {
			c, err = r.node.Join(ctx, id, peers, req.URL.Query().Get("pool") == "true")
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(c.Status())
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	r.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := r.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.opts.Logger.Error("admin listener stopped", "error", err)
		}
	}()
	return nil
}

// vmExecutors deploys a channel's code in the engine: fsm runs contracts
// through the vm.
func vmExecutors(e *vm.Engine) cluster.ExecutorFactory {
	return func(_ string, code []byte) (fsm.Executor, error) {
		m, err := e.Deploy(context.Background(), code)
		if err != nil {
			return nil, err
		}
		return vmExecutor{m}, nil
	}
}

// vmExecutor adapts a vm.Module to fsm.Executor.
type vmExecutor struct{ m *vm.Module }

func (x vmExecutor) Has(fn string) bool { return x.m.Has(fn) }

func (x vmExecutor) Execute(c fsm.Call, st fsm.StateReader) fsm.ExecResult {
	r := x.m.Call(context.Background(), st, vm.Call{
		Function: c.Function, Args: c.Args, Sender: c.Sender, Height: c.Height, TimestampMs: c.TimestampMs, Gas: c.Gas,
	})
	return fsm.ExecResult{Status: r.Status, AbortCode: r.AbortCode, Message: r.Message, GasUsed: r.GasUsed,
		ChangeSet: r.ChangeSet, Events: r.Events, Output: r.Output}
}

// channelAPI serves the client API (transport.ChannelAPI) from the
// cluster node.
type channelAPI struct{ n *cluster.Node }

func (a *channelAPI) channel(id protocol.ChannelID) (*cluster.Channel, error) {
	c, ok := a.n.Channel(id)
	if !ok {
		return nil, fmt.Errorf("%w: %s", transport.ErrNoChannel, id)
	}
	return c, nil
}

func (a *channelAPI) Exists(id protocol.ChannelID) bool { _, ok := a.n.Channel(id); return ok }

func (a *channelAPI) IsMember(id protocol.ChannelID, addr protocol.Address) bool {
	c, ok := a.n.Channel(id)
	return ok && c.IsMember(addr)
}

func (a *channelAPI) NextNonce(id protocol.ChannelID, addr protocol.Address) (uint64, error) {
	c, err := a.channel(id)
	if err != nil {
		return 0, err
	}
	return c.NextNonce(addr), nil
}

func (a *channelAPI) Submit(ctx context.Context, tx *protocol.SignedTx) (*transport.Outcome, error) {
	c, err := a.channel(tx.Tx.Channel)
	if err != nil {
		return nil, err
	}
	out, err := c.Submit(ctx, tx)
	if err != nil {
		return nil, clientError(err)
	}
	o := transport.Outcome(*out)
	return &o, nil
}

func clientError(err error) error {
	switch {
	case errors.Is(err, cluster.ErrBusy):
		return fmt.Errorf("%w: %v", transport.ErrBusy, err)
	case errors.Is(err, cluster.ErrNotLeader), errors.Is(err, cluster.ErrNoLeader), errors.Is(err, cluster.ErrLeadershipLost):
		return fmt.Errorf("%w: %v", transport.ErrUnavailable, err)
	case errors.Is(err, cluster.ErrChannelClosed):
		return fmt.Errorf("%w: %v", transport.ErrChannelClosed, err)
	case errors.Is(err, cluster.ErrClosed):
		return fmt.Errorf("%w: %v", transport.ErrNodeClosed, err)
	case errors.Is(err, cluster.ErrNotMember):
		return fmt.Errorf("%w: %v", transport.ErrNotMember, err)
	case errors.Is(err, cluster.ErrNotReady):
		return fmt.Errorf("%w: %v", transport.ErrNotReady, err)
	case errors.Is(err, cluster.ErrStaleNonce):
		return fmt.Errorf("%w: %v", transport.ErrStaleNonce, err)
	case errors.Is(err, cluster.ErrBadSignature):
		return fmt.Errorf("%w: %v", transport.ErrBadSignature, err)
	case errors.Is(err, cluster.ErrBadTx), errors.Is(err, cluster.ErrRefused):
		return fmt.Errorf("%w: %v", transport.ErrBadRequest, err)
	}
	return err
}

// subscriptionBuffer is how many applied batches a subscription may fall
// behind before it is dropped (the client resumes from its last height).
const subscriptionBuffer = 1024

// backlogChunk is the most retained outcomes one Next returns; a Next that
// gathers live batches stops adding once it holds this many.
const backlogChunk = 256

func (a *channelAPI) Subscribe(ctx context.Context, id protocol.ChannelID, from uint64) (transport.Subscription, error) {
	c, err := a.channel(id)
	if err != nil {
		return nil, err
	}
	if reason, ok := c.Retired(); ok {
		return nil, retiredError(id, reason)
	}
	f, err := c.SubscribeFrom(from, subscriptionBuffer)
	if err != nil {
		return nil, clientError(err)
	}
	s := &subscription{ch: f.C, cancel: f.Cancel, after: f.Height, backlog: f.Backlog}
	if f.Snapshot != nil {
		snap := f.Snapshot
		s.snap = &transport.Snapshot{Channel: id, Height: snap.Height, Digest: snap.Digest, State: snap.State, Members: snap.Members}
	}
	return closingSubscription{Subscription: s, c: c}, nil
}

// subscription serves a cluster.Feed: its retained backlog first, then the
// live batches above the feed's height. A Next returns every live batch
// already waiting (up to backlogChunk outcomes), so that a subscriber whose
// stream was busy catches up in one message.
type subscription struct {
	ch      <-chan cluster.Applied
	cancel  func()
	snap    *transport.Snapshot
	after   uint64
	backlog []fsm.Outcome
}

func (s *subscription) Snapshot() *transport.Snapshot { return s.snap }

func (s *subscription) Next(ctx context.Context) ([]transport.Outcome, error) {
	if len(s.backlog) > 0 {
		n := min(len(s.backlog), backlogChunk)
		out := make([]transport.Outcome, n)
		for i := range n {
			out[i] = transport.Outcome(s.backlog[i])
		}
		s.backlog = s.backlog[n:]
		return out, nil
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case a, ok := <-s.ch:
		if !ok {
			return nil, transport.ErrSlowSubscriber
		}
		out := s.appendAbove(nil, a)
	gather:
		for len(out) < backlogChunk {
			select {
			case a, ok := <-s.ch:
				if !ok {
					break gather // the next Next reports the drop
				}
				out = s.appendAbove(out, a)
			default:
				break gather
			}
		}
		return out, nil
	}
}

// appendAbove appends the outcomes of a above the feed's starting height.
func (s *subscription) appendAbove(out []transport.Outcome, a cluster.Applied) []transport.Outcome {
	if out == nil {
		out = make([]transport.Outcome, 0, len(a.Outcomes))
	}
	for _, o := range a.Outcomes {
		if o.Height > s.after {
			out = append(out, transport.Outcome(o))
		}
	}
	return out
}

func (s *subscription) Close() { s.cancel() }

// statusTimeout bounds the member queries of a client status request.
const statusTimeout = 2 * time.Second

func (a *channelAPI) Status(id protocol.ChannelID, members bool) (*transport.ChannelStatus, error) {
	c, err := a.channel(id)
	if err != nil {
		return nil, err
	}
	st := c.Status()
	out := &transport.ChannelStatus{Channel: id, Leader: st.Leader, Epoch: st.Epoch, Height: st.Height, Digest: st.Digest,
		SettledHeight: st.SettledHeight, Ready: st.Ready}
	if !members {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	ms, settled := c.MemberStatuses(ctx)
	out.SettledHeight = max(out.SettledHeight, settled)
	for _, m := range ms {
		out.Members = append(out.Members, transport.MemberStatus{Address: m.Address, Lag: m.Lag,
			HeartbeatAge: m.HeartbeatAge, Leader: m.Leader})
	}
	return out, nil
}

// Leave orders the member's signed scraft::leave and returns once the
// member is out of the channel (cluster.Channel.Leave).
func (a *channelAPI) Leave(ctx context.Context, tx *protocol.SignedTx) error {
	c, err := a.channel(tx.Tx.Channel)
	if err != nil {
		return err
	}
	return leaveCloseError(c.Leave(ctx, tx))
}

// Close orders the member's signed scraft::close and returns once the
// channel is closed on chain (cluster.Channel.RequestClose).
func (a *channelAPI) Close(ctx context.Context, tx *protocol.SignedTx) error {
	c, err := a.channel(tx.Tx.Channel)
	if err != nil {
		return err
	}
	return leaveCloseError(c.RequestClose(ctx, tx))
}

func leaveCloseError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, cluster.ErrLastMember), errors.Is(err, cluster.ErrQuorum), errors.Is(err, cluster.ErrNotRequest):
		return fmt.Errorf("%w: %v", transport.ErrBadRequest, err)
	}
	return clientError(err)
}

// retiredError is the client API's error for a channel this node stopped
// hosting: closed for good when the chain closed it, else (its member
// left) another node may still serve it.
func retiredError(id protocol.ChannelID, reason string) error {
	if reason == cluster.RetiredClosed {
		return fmt.Errorf("%w: channel %s", transport.ErrChannelClosed, id)
	}
	return fmt.Errorf("%w: this node left channel %s", transport.ErrNodeClosed, id)
}

// closingSubscription ends a subscription of a channel that this node
// stopped hosting (closed on chain, or its member left) with
// ErrChannelClosed rather than as a slow subscriber, so that the client
// ends cleanly instead of resubscribing.
type closingSubscription struct {
	transport.Subscription
	c *cluster.Channel
}

func (s closingSubscription) Next(ctx context.Context) ([]transport.Outcome, error) {
	outs, err := s.Subscription.Next(ctx)
	if errors.Is(err, transport.ErrSlowSubscriber) {
		if reason, ok := s.c.Retired(); ok {
			return outs, retiredError(s.c.ID(), reason)
		}
	}
	return outs, err
}
