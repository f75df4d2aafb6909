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

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/clientapi"
	"github.com/scraft/scraft/cluster"
	"github.com/scraft/scraft/console"
	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/backoff"
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
	// TuneTransport and TuneClient adjust the gRPC server's and the
	// client API's configuration (their bounds).
	TuneTransport func(*transport.Config)
	TuneClient    func(*clientapi.Config)
	// TuneConsole adjusts the web console's configuration (tests).
	TuneConsole func(*console.Config)

	// AdminToken, when set, is required as "Authorization: Bearer TOKEN"
	// on every admin path but /healthz and /readyz; an admin address off
	// loopback needs one. AdminAllowJoin serves POST /join.
	AdminToken     string
	AdminAllowJoin bool
	// AllowDrills serves POST /drill/crash (scraft drill failover).
	AllowDrills bool
}

func nodeCmd() *cobra.Command {
	var (
		data, listen, advertise, chainAddr, keyFile, admin, logLevel string
		adminToken, logStore                                         string
		channels, peers, chainKeys                                   []string
		logJSON, usePool                                             bool
		adminAllowJoin, allowDrills, leaderWatch                     bool
		batchTxs, inFlight                                           int
		maxConns, maxClientStreams                                   int
		maxConnStreams                                               uint32
		batchDelay, heartbeat, election, lease, commitTimeout        time.Duration
		snapInterval                                                 time.Duration
		snapThreshold, trailingLogs                                  uint64
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

The link to the chain (--chain) is TLS: the chain's key must be one of
--chain-key, else the one the chain presented on the node's first contact,
pinned in DIR/chain.pin. A node whose chain presents another key stops with
an error naming both; remove DIR/chain.pin or give --chain-key to accept a
new chain key.

One gRPC port (--listen) serves the Raft traffic of every channel, the peer
API and the client API. It holds at most --max-connections connections,
--max-streams-per-connection streams on each, and --max-client-streams
client streams in all; beyond them it refuses at once.

--admin serves the web console at / and /metrics, /healthz, /readyz, /status,
/digest?channel=ID&height=H and /debug/pprof over HTTP, on loopback unless
told otherwise: --admin 7501 and --admin :7501 mean 127.0.0.1:7501. An
address other hosts can reach (--admin 0.0.0.0:7501) needs --admin-token
(better SCRAFT_ADMIN_TOKEN, out of the process list); with a token, every
path but /healthz and /readyz needs "Authorization: Bearer TOKEN"; a
browser gives the token once to the console's form at /console/login, which
sets an HttpOnly cookie good for GET requests.
POST /join?channel=ID&peer=ADDR (see scraft join) is served only with
--admin-allow-join, POST /drill/crash (see scraft drill) only with
--allow-drills.
SIGINT or SIGTERM stops the node cleanly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger := newLogger("scraft", logLevel, logJSON)
			if logStore != "" && logStore != cluster.LogStoreBolt && logStore != cluster.LogStoreWAL {
				return fmt.Errorf("--log-store %q: want %s or %s", logStore, cluster.LogStoreBolt, cluster.LogStoreWAL)
			}
			key, err := protocol.LoadKey(keyFile)
			if err != nil {
				return err
			}
			chain, err := dialNodeChain(cmd.Context(), chainAddr, chainKeys, data, key, logger)
			if err != nil {
				return err
			}
			defer chain.Close()
			opts := nodeOptions{
				DataDir: data, Listen: listen, Advertise: advertise, Admin: admin,
				AdminToken: adminToken, AdminAllowJoin: adminAllowJoin, AllowDrills: allowDrills,
				Key: key, Chain: chain, Logger: logger, Peers: peers, UsePool: usePool,
				Tune: func(c *cluster.Config) {
					c.BatchMaxTxs, c.BatchMaxDelay, c.MaxInFlight = batchTxs, batchDelay, inFlight
					c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = heartbeat, election, lease
					c.CommitTimeout = commitTimeout
					c.LogStore = logStore
					c.SnapshotInterval, c.SnapshotThreshold, c.TrailingLogs = snapInterval, snapThreshold, trailingLogs
					c.LeaderWatch = leaderWatch
				},
				TuneTransport: func(c *transport.Config) {
					c.MaxConnections, c.MaxConcurrentStreams = maxConns, maxConnStreams
				},
				TuneClient: func(c *clientapi.Config) { c.MaxStreams = maxClientStreams },
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
	td, cd := transport.DefaultConfig(), clientapi.DefaultConfig()
	f := cmd.Flags()
	f.StringVar(&data, "data", "", "data folder: DIR/channels/<id>/ holds each channel's Raft log (raft.db or wal/) and snapshots (required)")
	f.StringVar(&logStore, "log-store", "", "where a channel's Raft log, term and vote live: bolt (raft-boltdb/v2, the default: a bbolt B+tree, page copies and two fsyncs per batch; its file grows with the log kept and never shrinks, freed pages are reused) or wal (hashicorp/raft-wal: appends to segment files, one fsync per batch, 3-13 % less CPU per tx on each member under load; 16 MiB of preallocated segment per channel, deleted once a snapshot truncates it; a full disk shows only when a segment rolls). A channel keeps the kind it was created with: unset opens whichever its folder holds and creates new ones as "+cluster.DefaultLogStore+"; set, a channel created with the other kind is refused")
	f.StringVar(&listen, "listen", "127.0.0.1:7500", "gRPC address: Raft, peer API and client API")
	f.StringVar(&advertise, "advertise", "", "address peers reach this node at, published on chain (default: the listen address; required when --listen binds every interface)")
	f.StringVar(&chainAddr, "chain", "127.0.0.1:7400", "settlement chain gRPC address (its --listen); for a chain of validators (scraft chain --engine comet) all their API addresses, comma-separated: the node believes an answer only when f+1 of them give it alike, f = (n-1)/3")
	f.StringSliceVar(&chainKeys, "chain-key", nil, chainKeyHelp+"pinned on first contact in DIR/"+chainPinName+" and required from then on)")
	f.StringVar(&keyFile, "key", "", "member key file (see scraft keygen) (required)")
	f.StringVar(&admin, "admin", "127.0.0.1:7501", "admin HTTP address for /metrics, /healthz, /readyz, /status, /debug/pprof (what scraft join and scraft status --admin default to): PORT or :PORT is 127.0.0.1:PORT; another host needs --admin-token; \"\" turns it off")
	f.StringVar(&adminToken, "admin-token", "", "bearer token every admin path but /healthz and /readyz requires, at least 16 characters; required when --admin is not on loopback (prefer SCRAFT_ADMIN_TOKEN)")
	f.BoolVar(&adminAllowJoin, "admin-allow-join", false, "serve POST /join on the admin listener (scraft join); it needs the token when one is set")
	f.BoolVar(&allowDrills, "allow-drills", false, "serve POST /drill/crash on the admin listener: scraft drill failover may kill this process (SIGKILL) to test failover; it needs the token when one is set")
	f.IntVar(&maxConns, "max-connections", td.MaxConnections, "most connections the gRPC port holds at once, peers and clients together; more are closed at once")
	f.Uint32Var(&maxConnStreams, "max-streams-per-connection", td.MaxConcurrentStreams, "most streams (calls) open at once on one connection")
	f.IntVar(&maxClientStreams, "max-client-streams", cd.MaxStreams, "most client API streams open at once on this node; more are refused busy")
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
	f.DurationVar(&snapInterval, "raft-snapshot-interval", d.SnapshotInterval, "how often Raft checks whether a channel needs a snapshot")
	f.Uint64Var(&snapThreshold, "raft-snapshot-threshold", d.SnapshotThreshold, "log entries since the last snapshot that make Raft take one and truncate the log")
	f.Uint64Var(&trailingLogs, "raft-trailing-logs", d.TrailingLogs, "log entries Raft keeps after a snapshot, so that a follower away for less catches up from the log")
	f.BoolVar(&leaderWatch, "raft-leader-watch", d.LeaderWatch, "a follower looks for a silent leader as soon as the heartbeat timeout is due (false: when Raft's own timer next fires)")
	cmd.MarkFlagRequired("data")
	cmd.MarkFlagRequired("key")
	return cmd
}

// dialNodeChain connects a node to the chain at addr. The chain's key must
// be one of keys, else the one pinned in data/chain.pin, which the first
// contact writes. The node reads the chain's head at once, so that a chain
// with another key stops it before it serves anything; a chain that does
// not answer yet only delays the channels that need it.
func dialNodeChain(ctx context.Context, addr string, keys []string, data string, key *protocol.Key, logger hclog.Logger) (*devchain.Client, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	trust, err := chainTrust(keys, data)
	if err != nil {
		return nil, err
	}
	pin := filepath.Join(data, chainPinName)
	_, statErr := os.Stat(pin)
	firstContact := len(keys) == 0 && errors.Is(statErr, os.ErrNotExist)
	chain, err := dialChainAt(addr, key, keys, trust)
	if err != nil {
		return nil, fmt.Errorf("chain %s: %w", addr, err)
	}
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = chain.Head(hctx)
	switch {
	case errors.Is(err, devchain.ErrChainKey):
		chain.Close()
		return nil, fmt.Errorf("chain %s: %w", addr, err)
	case err != nil:
		logger.Warn("chain not reachable yet: channels wait for it", "chain", addr, "error", err)
		go awaitChain(ctx, chain, addr, logger)
	default:
		k, _ := chain.ChainKey()
		if firstContact {
			logger.Info("chain key pinned on first contact", "chain", addr, "chain_key", k, "file", pin)
		}
		logger.Info("chain connected", "chain", addr, "chain_key", k)
	}
	return chain, nil
}

// awaitChain reads the chain's head until it answers, saying so each time
// it does not (at most every 30 s) and once it does, so that an operator
// of a node started before its chain sees why nothing happens.
func awaitChain(ctx context.Context, chain *devchain.Client, addr string, logger hclog.Logger) {
	b := backoff.New(backoff.Policy{Initial: time.Second, Max: 30 * time.Second})
	for b.Wait(ctx) {
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := chain.Head(hctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, devchain.ErrChainKey):
			logger.Error("the chain answering is not the one pinned: nothing is sent to it", "chain", addr, "error", err)
			return
		case err != nil:
			logger.Warn("chain still not reachable: channels wait for it", "chain", addr, "error", err)
		default:
			k, _ := chain.ChainKey()
			logger.Info("chain connected", "chain", addr, "chain_key", k)
			return
		}
	}
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
	client  *clientapi.Service
	engine  *vm.Engine
	reg     *prometheus.Registry
	admin   *http.Server
	adminLn net.Listener
	console *console.Console
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
	if o.Admin != "" {
		if _, err := checkAdmin(o.Admin, o.AdminToken); err != nil {
			return nil, err
		}
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
		return nil, fmt.Errorf("--listen: %w (another node on this machine? give each its own --listen)", err)
	}
	tcfg := transport.DefaultConfig()
	tcfg.AdvertiseAddr = o.Advertise
	tcfg.Logger = o.Logger
	tcfg.Key = o.Key
	tcfg.Registerer = r.reg
	if o.TuneTransport != nil {
		o.TuneTransport(&tcfg)
	}
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
	// A deployed module is an fsm.Executor. Channels open long after start
	// (POST /join), so the deploy does not take the start's context.
	ccfg.Executors = func(_ string, code []byte) (fsm.Executor, error) {
		m, err := r.engine.Deploy(context.Background(), code)
		if err != nil {
			return nil, err
		}
		return m, nil
	}
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
	r.srv.SetAuthorizer(r.node.RaftAuthorizer())
	ccl := clientapi.DefaultConfig()
	ccl.Addresses = []string{r.srv.Addr()}
	ccl.Logger = o.Logger
	if o.TuneClient != nil {
		o.TuneClient(&ccl)
	}
	r.client, err = clientapi.NewService(r.node.ClientAPI(), ccl)
	if err != nil {
		return nil, err
	}
	r.client.Register(r.srv.GRPC())
	r.reg.MustRegister(clientAPIMetrics(r.client)...)
	r.reg.MustRegister(transportMetrics(r.srv)...)
	r.reg.MustRegister(buildInfo(), newChannelStates(r.node))
	r.node.Expect(o.Channels...)
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
		if r.console != nil {
			// First: it ends its event streams, which the admin
			// listener's shutdown would otherwise wait for.
			errs = append(errs, r.console.Close())
		}
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

// serveAdmin serves the console at /, /metrics, /healthz, /readyz,
// /status, /debug/pprof and, with AdminAllowJoin, POST /join; with
// AdminToken every path but /healthz, /readyz and the console's login
// needs the token.
func (r *runningNode) serveAdmin() error {
	addr, err := checkAdmin(r.opts.Admin, r.opts.AdminToken)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--admin: %w (another node on this machine? give each its own --admin, or --admin \"\" for none)", err)
	}
	r.adminLn = ln
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		for _, c := range r.node.Channels() {
			if _, retired := c.Retired(); retired {
				continue // closed or left: nothing left to catch up on
			}
			if st := c.Status(); st.StoreError != "" {
				http.Error(w, fmt.Sprintf("channel %s cannot write its Raft log: %s", st.Channel, st.StoreError), http.StatusServiceUnavailable)
				return
			} else if !st.Ready {
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
		if !r.opts.AdminAllowJoin {
			joinOff(w, req)
			return
		}
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
	mux.HandleFunc("/drill/crash", r.drillCrash)
	mux.HandleFunc("/transfer", r.adminTransfer)
	ccfg := console.DefaultConfig()
	chain, _ := r.opts.Chain.(consoleChain)
	ccfg.Node = consoleNode{n: r.node, reg: r.reg, chain: chain, proposals: newProposalWatch()}
	ccfg.Logger = r.opts.Logger
	key, grpcAddr := r.opts.Key, r.srv.Addr()
	ccfg.Dial = func(ctx context.Context) (*client.Client, error) {
		// The console reads as the node's own member, through the
		// client API like any SDK client, pinning this node's key.
		return client.Dial(ctx, key, []protocol.Address{key.Address()}, grpcAddr)
	}
	if r.opts.TuneConsole != nil {
		r.opts.TuneConsole(&ccfg)
	}
	if r.console, err = console.New(ccfg); err != nil {
		ln.Close()
		return err
	}
	r.console.Register(mux)
	mux.HandleFunc(consoleLoginPath, consoleLogin(r.opts.AdminToken))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	r.admin = &http.Server{Handler: loopbackHost(r.opts.AdminToken, requireToken(r.opts.AdminToken, mux)), ReadHeaderTimeout: 5 * time.Second}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := r.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.opts.Logger.Error("admin listener stopped", "error", err)
		}
	}()
	return nil
}

// clientAPIMetrics exposes the client API's counters (clientapi.Stats) to
// Prometheus, read when scraped.
func clientAPIMetrics(s *clientapi.Service) []prometheus.Collector {
	stat := func(f func(clientapi.Stats) int64) func() float64 {
		return func() float64 { return float64(f(s.Stats())) }
	}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "scraft", Name: "client_streams",
			Help: "Client API streams open now."}, stat(func(st clientapi.Stats) int64 { return st.Streams })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "scraft", Name: "client_calls_in_flight",
			Help: "Client API calls being served now."}, stat(func(st clientapi.Stats) int64 { return st.Calls })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "scraft", Name: "client_subscriptions",
			Help: "Client API subscriptions open now."}, stat(func(st clientapi.Stats) int64 { return st.Subscriptions })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "scraft", Name: "client_busy_total",
			Help: "Client API requests answered busy."}, stat(func(st clientapi.Stats) int64 { return st.Busy })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "scraft", Name: "client_subscribers_dropped_total",
			Help: "Client API subscriptions dropped for falling behind."}, stat(func(st clientapi.Stats) int64 { return st.Dropped })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "scraft", Name: "client_streams_refused_total",
			Help: "Client API streams refused because the node had MaxStreams open."}, stat(func(st clientapi.Stats) int64 { return st.StreamsRefused })),
	}
}

// transportMetrics exposes the gRPC port's connection counts
// (transport.ConnStats) to Prometheus, read when scraped.
func transportMetrics(s *transport.Server) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "scraft", Name: "connections",
			Help: "Connections the gRPC port holds now."}, func() float64 { return float64(s.ConnStats().Open) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "scraft", Name: "connections_refused_total",
			Help: "Connections closed at once because the gRPC port held MaxConnections."}, func() float64 { return float64(s.ConnStats().Refused) }),
	}
}
