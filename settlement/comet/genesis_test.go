package comet

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/types"
	"github.com/hashicorp/go-hclog"

	"github.com/scraft/scraft/settlement/chaintest"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
)

func TestParseAppState(t *testing.T) {
	short := chaintest.ShortParams()
	good, err := json.Marshal(NewAppState(short))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		raw  string
		want *contract.Params // nil: refused
	}{
		{"written by NewAppState", string(good), &short},
		{"empty: a chain from before", "", ptr(contract.DefaultParams())},
		{"null", "null", ptr(contract.DefaultParams())},
		{"unknown field", `{"params":{"heartbeat_ttl":"5s"},"extra":1}`, nil},
		{"missing windows", `{"params":{"initial_balance":"10"}}`, nil},
		{"not a duration", `{"params":{"initial_balance":"1","heartbeat_ttl":"soon","ban_duration":"5s","vote_window":"12s","censorship_window":"3s","report_cooldown":"5s"}}`, nil},
		{"zero ttl", `{"params":{"initial_balance":"1","heartbeat_ttl":"0s","ban_duration":"5s","vote_window":"12s","censorship_window":"3s","report_cooldown":"5s"}}`, nil},
		{"ban shorter than ttl", `{"params":{"initial_balance":"1","heartbeat_ttl":"5s","ban_duration":"1s","vote_window":"12s","censorship_window":"3s","report_cooldown":"5s"}}`, nil},
		{"negative window", `{"params":{"initial_balance":"1","heartbeat_ttl":"5s","ban_duration":"5s","vote_window":"12s","censorship_window":"-3s","report_cooldown":"5s"}}`, nil},
		{"balance not a number", `{"params":{"initial_balance":"lots","heartbeat_ttl":"5s","ban_duration":"5s","vote_window":"12s","censorship_window":"3s","report_cooldown":"5s"}}`, nil},
		{"data after the object", string(good) + `{}`, nil},
		{"not json", `{"params":`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseAppState([]byte(tc.raw))
			switch {
			case tc.want == nil && err == nil:
				t.Fatalf("accepted as %+v", p)
			case tc.want != nil && (err != nil || p != *tc.want):
				t.Fatalf("got %+v, %v; want %+v", p, err, *tc.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// The genesis names the chain's settings; a validator's state holds the
// ones it began with. A genesis changed afterwards (or another chain's) is
// refused at start, and InitChain refuses settings other than the state's.
func TestValidatorRefusesAnotherGenesis(t *testing.T) {
	c := newTestNetWith(t, 1, chaintest.ShortParams())
	c.waitHeight(0, 2, 20*time.Second)
	if got := c.vals[0].Chain().Params(); got != chaintest.ShortParams() {
		t.Fatalf("validator runs with %+v", got)
	}
	c.stop(0)

	conf, err := LoadCometConfig(c.tn.Homes[0])
	if err != nil {
		t.Fatal(err)
	}
	g, err := types.GenesisDocFromFile(conf.GenesisFile())
	if err != nil {
		t.Fatal(err)
	}
	g.AppState, err = json.Marshal(NewAppState(contract.DefaultParams()))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.SaveAs(conf.GenesisFile()); err != nil {
		t.Fatal(err)
	}
	if v, err := Start(c.config(0)); !errors.Is(err, devchain.ErrParamsDiffer) {
		if err == nil {
			v.Close()
		}
		t.Fatalf("start under another genesis: %v", err)
	}

	// InitChain on a fresh state with settings other than the state's.
	cfg := devchain.DefaultConfig(t.TempDir())
	cfg.BlockInterval, cfg.Params = 0, chaintest.ShortParams()
	chain, err := devchain.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	app := NewApp(chain, hclog.NewNullLogger())
	other, _ := json.Marshal(NewAppState(contract.DefaultParams()))
	if _, err := app.InitChain(context.Background(), &abci.InitChainRequest{InitialHeight: 1, AppStateBytes: other}); err == nil {
		t.Fatal("InitChain took settings other than the state's")
	}
	mine, _ := json.Marshal(NewAppState(chaintest.ShortParams()))
	resp, err := app.InitChain(context.Background(), &abci.InitChainRequest{InitialHeight: 1, AppStateBytes: mine})
	if want := contract.GenesisHash(chaintest.ShortParams()); err != nil || string(resp.AppHash) != string(want[:]) {
		t.Fatalf("InitChain: %v, app hash %x want %x", err, resp.GetAppHash(), want)
	}
}

// The default timeouts make no empty block while txs may come (one a
// second at most when idle); the test timeouts make one after every
// commit pause. The genesis names the settings and their state hash.
func TestTestnetWritesBlockPacingAndSettings(t *testing.T) {
	for _, tc := range []struct {
		timeouts Timeouts
		empty    bool
		interval time.Duration
	}{
		{DefaultTimeouts(), false, time.Second},
		{TestTimeouts(), true, 0},
	} {
		tn, err := WriteTestnet(TestnetConfig{Dir: t.TempDir(), Validators: 1, Timeouts: tc.timeouts, Params: chaintest.ShortParams()})
		if err != nil {
			t.Fatal(err)
		}
		conf, err := LoadCometConfig(tn.Homes[0])
		if err != nil {
			t.Fatal(err)
		}
		if conf.Consensus.CreateEmptyBlocks != tc.empty || conf.Consensus.CreateEmptyBlocksInterval != tc.interval {
			t.Fatalf("%+v: create_empty_blocks %v every %s", tc.timeouts, conf.Consensus.CreateEmptyBlocks, conf.Consensus.CreateEmptyBlocksInterval)
		}
		g, err := types.GenesisDocFromFile(conf.GenesisFile())
		if err != nil {
			t.Fatal(err)
		}
		p, err := ParseAppState(g.AppState)
		want := contract.GenesisHash(chaintest.ShortParams())
		if err != nil || p != chaintest.ShortParams() || string(g.AppHash) != string(want[:]) {
			t.Fatalf("genesis settings %+v, %v; app hash %x", p, err, g.AppHash)
		}
	}
	if _, err := WriteTestnet(TestnetConfig{Dir: t.TempDir(), Params: contract.Params{HeartbeatTTL: time.Second}}); !errors.Is(err, contract.ErrBadParams) {
		t.Fatalf("a testnet with bad settings: %v", err)
	}
}
