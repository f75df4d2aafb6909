package comet

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	cmtcfg "github.com/cometbft/cometbft/config"
	"github.com/cometbft/cometbft/crypto"
	"github.com/cometbft/cometbft/crypto/ed25519"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/privval"
	"github.com/cometbft/cometbft/types"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
)

// Timeouts are the consensus timeouts of a chain. A block takes about one
// round trip of proposal and two of votes, then TimeoutCommit; a round
// whose proposer is down costs TimeoutPropose more.
type Timeouts struct {
	// Propose is how long a validator waits for the round's proposal.
	// Default 1 s.
	Propose time.Duration
	// Vote is how long it waits for the rest of the prevotes and
	// precommits once it has 2/3 of any (timeout_prevote,
	// timeout_precommit). Default 500 ms.
	Vote time.Duration
	// Commit is the pause after a block before the next height, which
	// paces blocks and batches txs. Zero moves on as soon as every
	// validator's precommit is in. Default 0.
	Commit time.Duration
	// EmptyBlocks, when positive, is how long a chain with no tx to order
	// waits before it makes an empty block (CometBFT's
	// create_empty_blocks = false with this interval): a tx that arrives
	// while the chain idles is proposed at once instead of at the next
	// Commit pause's end. Block time is BFT time, taken from the votes on
	// the block before, so on an idle chain it can lag the clocks by up to
	// this much: heartbeats and windows then end that much later. Zero
	// makes a block after every Commit pause, txs or not. Default 1 s.
	EmptyBlocks time.Duration
}

// DefaultTimeouts are for validators on one continent: a tx is proposed
// as soon as it arrives and the block after it as soon as every
// validator's precommit is in, so a tx is committed after one round of
// votes (tens of milliseconds on a LAN, about 0.1 s on loopback with two
// shared cores) instead of waiting for a block time; with the proposer
// down, about 1.5 s. An idle chain makes a block a second. The cost is
// more, smaller blocks under load, each a round of votes.
func DefaultTimeouts() Timeouts {
	return Timeouts{Propose: time.Second, Vote: 500 * time.Millisecond, Commit: 0, EmptyBlocks: time.Second}
}

// TestTimeouts are for validators on loopback in tests.
func TestTimeouts() Timeouts {
	return Timeouts{Propose: 300 * time.Millisecond, Vote: 100 * time.Millisecond, Commit: 50 * time.Millisecond}
}

// TestnetConfig describes a chain of validators on one host.
type TestnetConfig struct {
	// Dir receives one home per validator, node0 … nodeN-1. Required.
	Dir string
	// Validators is how many. Default 4 (tolerates one faulty).
	Validators int
	// ChainID names the chain. Default "scraft-comet".
	ChainID string
	// Host is the address the validators listen and dial on. Default
	// 127.0.0.1.
	Host string
	// Ports are, per validator, its P2P and API ports; nil picks free ones.
	Ports [][2]int
	// Timeouts of consensus. Default DefaultTimeouts().
	Timeouts Timeouts
	// Params are the chain's settings, written to the genesis (AppState).
	// Default contract.DefaultParams().
	Params contract.Params
}

// Testnet is what WriteTestnet wrote.
type Testnet struct {
	Homes []string
	// APIs are the validators' gRPC API addresses and ChainKeys the keys
	// they present, in the same order.
	APIs      []string
	ChainKeys []protocol.Address
}

// WriteTestnet writes the homes of a new chain's validators: CometBFT's
// config, keys and the shared genesis, and the scraft settings and API key.
func WriteTestnet(tc TestnetConfig) (*Testnet, error) {
	if tc.Dir == "" {
		return nil, errors.New("comet: testnet Dir is required")
	}
	if tc.Validators == 0 {
		tc.Validators = 4
	}
	if tc.ChainID == "" {
		tc.ChainID = "scraft-comet"
	}
	if tc.Host == "" {
		tc.Host = "127.0.0.1"
	}
	if tc.Timeouts == (Timeouts{}) {
		tc.Timeouts = DefaultTimeouts()
	}
	if tc.Params == (contract.Params{}) {
		tc.Params = contract.DefaultParams()
	}
	if err := tc.Params.Validate(); err != nil {
		return nil, fmt.Errorf("comet: testnet: %w", err)
	}
	appState, err := json.Marshal(NewAppState(tc.Params))
	if err != nil {
		return nil, err
	}
	if tc.Validators < 1 {
		return nil, fmt.Errorf("comet: Validators (%d) must be positive", tc.Validators)
	}
	if tc.Ports == nil {
		for range tc.Validators {
			p2pPort, err := freePort(tc.Host)
			if err != nil {
				return nil, err
			}
			apiPort, err := freePort(tc.Host)
			if err != nil {
				return nil, err
			}
			tc.Ports = append(tc.Ports, [2]int{p2pPort, apiPort})
		}
	}
	if len(tc.Ports) != tc.Validators {
		return nil, fmt.Errorf("comet: %d port pairs for %d validators", len(tc.Ports), tc.Validators)
	}

	tn := &Testnet{}
	genesis := &types.GenesisDoc{
		ChainID:         tc.ChainID,
		GenesisTime:     time.Now().UTC().Truncate(time.Millisecond),
		ConsensusParams: types.DefaultConsensusParams(),
		InitialHeight:   1,
		AppState:        appState,
	}
	ah := contract.GenesisHash(tc.Params)
	genesis.AppHash = ah[:]
	confs := make([]*cmtcfg.Config, tc.Validators)
	peers := make([]string, tc.Validators)
	for i := range tc.Validators {
		home := filepath.Join(tc.Dir, fmt.Sprintf("node%d", i))
		if _, err := os.Stat(filepath.Join(home, "config", "genesis.json")); err == nil {
			return nil, fmt.Errorf("comet: %s already holds a chain", home)
		}
		conf := cmtcfg.DefaultConfig()
		conf.SetRoot(home)
		cmtcfg.EnsureRoot(home)
		if err := os.MkdirAll(filepath.Join(home, "data"), 0o700); err != nil {
			return nil, fmt.Errorf("comet: %w", err)
		}
		pv, err := privval.GenFilePV(conf.PrivValidatorKeyFile(), conf.PrivValidatorStateFile(), func() (crypto.PrivKey, error) { return ed25519.GenPrivKey(), nil })
		if err != nil {
			return nil, fmt.Errorf("comet: validator key: %w", err)
		}
		pv.Save()
		nodeKey, err := p2p.LoadOrGenNodeKey(conf.NodeKeyFile())
		if err != nil {
			return nil, fmt.Errorf("comet: node key: %w", err)
		}
		pub, err := pv.GetPubKey()
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("node%d", i)
		genesis.Validators = append(genesis.Validators, types.GenesisValidator{Address: pub.Address(), PubKey: pub, Power: 10, Name: name})

		key, err := protocol.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		if err := protocol.SaveKey(filepath.Join(home, KeyFile), key); err != nil {
			return nil, fmt.Errorf("comet: API key: %w", err)
		}
		api := net.JoinHostPort(tc.Host, fmt.Sprint(tc.Ports[i][1]))
		b, err := json.MarshalIndent(Settings{Listen: api}, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(home, SettingsFile), append(b, '\n'), 0o600); err != nil {
			return nil, fmt.Errorf("comet: %w", err)
		}

		conf.Moniker = name
		conf.P2P.ListenAddress = fmt.Sprintf("tcp://%s", net.JoinHostPort(tc.Host, fmt.Sprint(tc.Ports[i][0])))
		conf.P2P.AllowDuplicateIP = true
		conf.P2P.AddrBookStrict = false
		conf.P2P.PexReactor = false
		conf.P2P.HandshakeTimeout = 5 * time.Second
		conf.P2P.DialTimeout = 2 * time.Second
		conf.RPC.ListenAddress = "" // the gRPC API is the chain's interface
		conf.Instrumentation.Prometheus = false
		conf.TxIndex.Indexer = "null"
		conf.Consensus.TimeoutPropose = tc.Timeouts.Propose
		conf.Consensus.TimeoutPrevote = tc.Timeouts.Vote
		conf.Consensus.TimeoutPrecommit = tc.Timeouts.Vote
		conf.Consensus.TimeoutCommit = tc.Timeouts.Commit
		if tc.Timeouts.EmptyBlocks > 0 {
			conf.Consensus.CreateEmptyBlocks = false
			conf.Consensus.CreateEmptyBlocksInterval = tc.Timeouts.EmptyBlocks
		}
		// Each round without a decision waits longer, so that a large
		// block (code uploads reach megabytes) gets through in the end;
		// half the timeout a round rather than CometBFT's fixed 500 ms, so
		// that after an outage of many rounds it has not grown to minutes.
		conf.Consensus.TimeoutProposeDelta = tc.Timeouts.Propose / 2
		conf.Consensus.TimeoutPrevoteDelta = tc.Timeouts.Vote / 2
		conf.Consensus.TimeoutPrecommitDelta = tc.Timeouts.Vote / 2
		// CometBFT caps each peer link at 5 MB/s; a block of megabytes
		// then takes seconds to reach the others.
		conf.P2P.SendRate = 40 << 20
		conf.P2P.RecvRate = 40 << 20
		conf.Consensus.PeerGossipSleepDuration = 10 * time.Millisecond
		conf.Mempool.MaxTxBytes = 8 << 20
		conf.Mempool.MaxTxsBytes = 256 << 20
		confs[i] = conf
		peers[i] = fmt.Sprintf("%s@%s", nodeKey.ID(), net.JoinHostPort(tc.Host, fmt.Sprint(tc.Ports[i][0])))
		tn.Homes = append(tn.Homes, home)
		tn.APIs = append(tn.APIs, api)
		tn.ChainKeys = append(tn.ChainKeys, key.Address())
	}
	genesis.ConsensusParams.Block.MaxBytes = 16 << 20
	if err := genesis.ValidateAndComplete(); err != nil {
		return nil, fmt.Errorf("comet: genesis: %w", err)
	}
	for i, conf := range confs {
		// Validator i dials the validators before it and is dialed by
		// those after it: one side of each pair redials a lost link, so a
		// restarted validator's dials never cross its peers' (two
		// validators dialing each other at once each refuse the other's
		// link as a duplicate, again and again).
		conf.P2P.PersistentPeers = strings.Join(peers[:i], ",")
		cmtcfg.WriteConfigFile(filepath.Join(tn.Homes[i], "config", "config.toml"), conf)
		if err := genesis.SaveAs(conf.GenesisFile()); err != nil {
			return nil, fmt.Errorf("comet: genesis: %w", err)
		}
	}
	return tn, nil
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("comet: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
