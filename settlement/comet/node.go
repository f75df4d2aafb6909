package comet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	cmtcfg "github.com/cometbft/cometbft/config"
	cmtlog "github.com/cometbft/cometbft/libs/log"
	"github.com/cometbft/cometbft/mempool"
	nm "github.com/cometbft/cometbft/node"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/privval"
	"github.com/cometbft/cometbft/proxy"
	"github.com/cometbft/cometbft/types"
	"github.com/hashicorp/go-hclog"
	"github.com/spf13/viper"
	"google.golang.org/grpc"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/devchain"
)

// Files of a validator's home besides CometBFT's own (config/config.toml,
// config/genesis.json, config/node_key.json, config/priv_validator_key.json,
// data/).
const (
	// SettingsFile holds the scraft side of the validator (Settings).
	SettingsFile = "config/scraft.json"
	// KeyFile is the key the validator's gRPC API presents over TLS.
	KeyFile = "config/chain.key"
	// AppDir holds the contract's state (a devchain store).
	AppDir = "data/scraft"
)

// Settings are the scraft side of a validator, kept in SettingsFile. The
// chain's own settings (contract.Params) are not here but in the genesis
// every validator shares (AppState).
type Settings struct {
	// Listen is where the validator serves the chain's gRPC API.
	Listen string `json:"listen"`
}

// Config configures a Validator.
type Config struct {
	// Home is the validator's home as WriteTestnet writes it. Required.
	Home string
	// Listen overrides Settings.Listen when not empty ("127.0.0.1:0" picks
	// a port; Addr tells which).
	Listen string
	// Logger receives scraft's logs. Default: a null logger.
	Logger hclog.Logger
	// CometLogLevel routes CometBFT's own logs to Logger at and above this
	// level ("debug", "info", "error"). Default "": CometBFT is silent.
	CometLogLevel string
	// NoSync skips fsync of the contract's state (tests only). CometBFT's
	// own stores are unaffected; a crash may lose the contract's last
	// blocks, which the handshake then replays.
	NoSync bool
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Home == "":
		return errors.New("comet: Home is required")
	case c.CometLogLevel != "" && c.CometLogLevel != "debug" && c.CometLogLevel != "info" && c.CometLogLevel != "error":
		return fmt.Errorf("comet: CometLogLevel (%q) must be debug, info, error or empty", c.CometLogLevel)
	}
	return nil
}

// Validator is one validator of a comet chain: CometBFT with the App in
// process, and the chain's gRPC API.
type Validator struct {
	cfg    Config
	log    hclog.Logger
	chain  *devchain.Chain
	app    *App
	node   *nm.Node
	grpc   *grpc.Server
	addr   string
	key    *protocol.Key
	served chan error
	stopCh chan struct{}

	inflight struct {
		sync.Mutex
		// highest nonce of a tx submitted here and not yet answered, by
		// sender (looked up only).
		nonce map[protocol.Address]uint64
	}
	closeOnce sync.Once
	closeErr  error
}

// LoadCometConfig reads home/config/config.toml.
func LoadCometConfig(home string) (*cmtcfg.Config, error) {
	v := viper.New()
	v.SetConfigFile(filepath.Join(home, "config", "config.toml"))
	if err := v.ReadInConfig(); err != nil {
		return nil, fmt.Errorf("comet: read config: %w", err)
	}
	conf := cmtcfg.DefaultConfig()
	if err := v.Unmarshal(conf); err != nil {
		return nil, fmt.Errorf("comet: parse config: %w", err)
	}
	conf.SetRoot(home)
	if err := conf.ValidateBasic(); err != nil {
		return nil, fmt.Errorf("comet: config: %w", err)
	}
	return conf, nil
}

// LoadSettings reads home's SettingsFile.
func LoadSettings(home string) (Settings, error) {
	var s Settings
	b, err := os.ReadFile(filepath.Join(home, SettingsFile))
	if err != nil {
		return s, fmt.Errorf("comet: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("comet: %s: %w", SettingsFile, err)
	}
	return s, nil
}

// Start starts the validator in cfg.Home: its contract state, CometBFT
// (which replays the blocks the state lacks) and the gRPC API.
func Start(cfg Config) (*Validator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	conf, err := LoadCometConfig(cfg.Home)
	if err != nil {
		return nil, err
	}
	st, err := LoadSettings(cfg.Home)
	if err != nil {
		return nil, err
	}
	if cfg.Listen != "" {
		st.Listen = cfg.Listen
	}
	key, err := protocol.LoadKey(filepath.Join(cfg.Home, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("comet: API key: %w", err)
	}
	v := &Validator{cfg: cfg, log: cfg.Logger.Named("comet"), key: key, served: make(chan error, 1), stopCh: make(chan struct{})}
	v.inflight.nonce = map[protocol.Address]uint64{}

	genesis, err := types.GenesisDocFromFile(conf.GenesisFile())
	if err != nil {
		return nil, fmt.Errorf("comet: genesis: %w", err)
	}
	params, err := ParseAppState(genesis.AppState)
	if err != nil {
		return nil, err
	}

	dcfg := devchain.DefaultConfig(filepath.Join(cfg.Home, AppDir))
	dcfg.BlockInterval = 0
	// A state made under another genesis refuses to open
	// (devchain.ErrParamsDiffer).
	dcfg.Params = params
	dcfg.NoSync = cfg.NoSync
	dcfg.Logger = cfg.Logger
	v.chain, err = devchain.Open(dcfg)
	if err != nil {
		return nil, err
	}
	v.app = NewApp(v.chain, v.log)

	nodeKey, err := p2p.LoadNodeKey(conf.NodeKeyFile())
	if err != nil {
		v.chain.Close()
		return nil, fmt.Errorf("comet: node key: %w", err)
	}
	pv := privval.LoadFilePV(conf.PrivValidatorKeyFile(), conf.PrivValidatorStateFile())
	v.node, err = nm.NewNode(context.Background(), conf, pv, nodeKey, proxy.NewLocalClientCreator(v.app),
		nm.DefaultGenesisDocProviderFunc(conf), dbProvider(v.log.Named("pebble")), nm.DefaultMetricsProvider(conf.Instrumentation),
		cometLogger(v.log.Named("cometbft"), cfg.CometLogLevel))
	if err != nil {
		v.chain.Close()
		return nil, fmt.Errorf("comet: new node: %w", err)
	}
	if err := v.node.Start(); err != nil {
		v.chain.Close()
		return nil, fmt.Errorf("comet: start node: %w", err)
	}
	v.grpc, err = devchain.NewBackendGRPCServer(backend{v.chain, v}, v.chain.Config(), key)
	if err == nil {
		var l net.Listener
		if l, err = net.Listen("tcp", st.Listen); err == nil {
			v.addr = l.Addr().String()
			go func() { v.served <- v.grpc.Serve(l) }()
		}
	}
	if err != nil {
		v.stopNode()
		v.chain.Close()
		return nil, fmt.Errorf("comet: serve API on %s: %w", st.Listen, err)
	}
	v.log.Info("validator started", "home", cfg.Home, "api", v.addr, "chain_key", key.Address(),
		"p2p", conf.P2P.ListenAddress, "height", v.chain.Head().Height)
	return v, nil
}

// Addr returns the gRPC API's address.
func (v *Validator) Addr() string { return v.addr }

// ChainKey returns the address of the key the API presents.
func (v *Validator) ChainKey() protocol.Address { return v.key.Address() }

// Chain returns the contract state (committed blocks only).
func (v *Validator) Chain() *devchain.Chain { return v.chain }

// Served reports the API server's end (it ends only on failure or Close).
func (v *Validator) Served() <-chan error { return v.served }

func (v *Validator) stopNode() {
	if err := v.node.Stop(); err != nil {
		v.log.Warn("stop node", "error", err)
	}
	v.node.Wait()
}

// Close stops the API and CometBFT and closes the state. It is safe to call
// more than once.
func (v *Validator) Close() error {
	v.closeOnce.Do(func() {
		close(v.stopCh)
		// Stop taking calls; then stop consensus and close the state, which
		// ends the watch streams (they never end by themselves).
		stopped := make(chan struct{})
		go func() { v.grpc.GracefulStop(); close(stopped) }()
		v.stopNode()
		v.app.abort()
		v.closeErr = v.chain.Close()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			v.grpc.Stop()
			<-stopped
		}
		v.log.Info("validator stopped", "home", v.cfg.Home)
	})
	return v.closeErr
}

// backend is the chain state as the gRPC service sees it: queries read the
// committed state; a tx goes through CometBFT's mempool.
type backend struct {
	*devchain.Chain
	v *Validator
}

// Submit puts raw in the mempool (CheckTx) and waits until a committed
// block holds it. A tx CheckTx refuses is answered at once, in no block.
func (b backend) Submit(ctx context.Context, raw []byte) (devchain.Outcome, error) {
	v := b.v
	tx, err := devchain.DecodeTx(raw, v.chain.Config().MaxTxBytes)
	if err != nil {
		return devchain.Outcome{Err: err}, err
	}
	done, stop := v.app.wait(raw)
	defer stop()
	v.inflight.Lock()
	if tx.Nonce > v.inflight.nonce[tx.Sender] {
		v.inflight.nonce[tx.Sender] = tx.Nonce
	}
	v.inflight.Unlock()
	defer func() {
		v.inflight.Lock()
		if v.inflight.nonce[tx.Sender] <= tx.Nonce {
			delete(v.inflight.nonce, tx.Sender)
		}
		v.inflight.Unlock()
	}()

	refused := func(err error) (devchain.Outcome, error) {
		return devchain.Outcome{TxHash: tx.Hash(), Err: err}, err
	}
	rr, err := v.node.Mempool().CheckTx(raw, "")
	switch {
	case errors.Is(err, mempool.ErrTxInCache):
		// The same bytes were sent before: wait for them, unless their
		// nonce is used already.
		if _, err := v.chain.CheckTx(raw, false); err != nil {
			return refused(err)
		}
	case err != nil:
		return refused(fmt.Errorf("%w: mempool: %v", devchain.ErrBusy, err))
	default:
		rr.Wait()
		if res := rr.Response.GetCheckTx(); res == nil {
			return refused(fmt.Errorf("%w: mempool gave no answer", devchain.ErrBusy))
		} else if res.Code != 0 {
			return refused(devchain.ErrorOf(res.Code, res.Log))
		}
	}
	// Another tx of the sender with the same nonce may be committed first
	// (a retry signed anew): this one then never will be. Look now and then.
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case o := <-done:
			return o, o.Err
		case <-v.stopCh:
			return refused(devchain.ErrClosed)
		case <-ctx.Done():
			return devchain.Outcome{TxHash: tx.Hash()}, ctx.Err()
		case <-tick.C:
			if _, err := v.chain.CheckTx(raw, false); errors.Is(err, devchain.ErrBadNonce) {
				// The nonce is used. If by this tx, Commit is answering it:
				// taking the app's lock waits for that.
				v.app.mu.Lock()
				v.app.mu.Unlock() //nolint:staticcheck // a barrier, not a critical section
				select {
				case o := <-done:
					return o, o.Err
				default:
					return refused(err)
				}
			}
		}
	}
}

// AccountInfo counts the txs submitted here and not yet in a block, so a
// client that reads its next nonce between two txs gets a fresh one.
func (b backend) AccountInfo(a protocol.Address) (*settlement.AccountInfo, error) {
	acc, err := b.Chain.AccountInfo(a)
	if err != nil {
		return nil, err
	}
	b.v.inflight.Lock()
	if n, ok := b.v.inflight.nonce[a]; ok && n >= acc.NextNonce {
		acc.NextNonce = n + 1
	}
	b.v.inflight.Unlock()
	return acc, nil
}

// cometLogger routes CometBFT's logs to log from level on; "" drops them.
func cometLogger(log hclog.Logger, level string) cmtlog.Logger {
	if level == "" {
		return cmtlog.NewNopLogger()
	}
	return &hcLogger{log: log, min: hclog.LevelFromString(level)}
}

type hcLogger struct {
	log hclog.Logger
	min hclog.Level
}

func (l *hcLogger) Debug(msg string, kv ...any) {
	if l.min <= hclog.Debug {
		l.log.Debug(msg, kv...)
	}
}

func (l *hcLogger) Info(msg string, kv ...any) {
	if l.min <= hclog.Info {
		l.log.Info(msg, kv...)
	}
}

func (l *hcLogger) Error(msg string, kv ...any) {
	if l.min <= hclog.Error {
		l.log.Error(msg, kv...)
	}
}

func (l *hcLogger) With(kv ...any) cmtlog.Logger {
	return &hcLogger{log: l.log.With(kv...), min: l.min}
}
