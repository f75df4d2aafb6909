package devchain

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/scraft/scraft/settlement/chaintest"
	"github.com/scraft/scraft/settlement/contract"
)

// A chain's settings are fixed at its genesis: stored in its state, read
// back on every open, refused when a restart names others, covered by the
// state hash, and served to clients.
func TestParamsFixedAtGenesis(t *testing.T) {
	dir := t.TempDir()
	p := chaintest.ShortParams()
	c, _ := newTestChainWith(t, dir, 2*time.Millisecond, p)
	if c.Params() != p {
		t.Fatalf("params %+v", c.Params())
	}
	ctx := context.Background()
	remote, err := Dial(serve(t, c), chaintest.Key("a"), pinned)
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	for _, cl := range []*Client{NewLocal(c, chaintest.Key("a")), remote} {
		got, err := cl.Params(ctx)
		if err != nil || got != p {
			t.Fatalf("client reads %+v, %v", got, err)
		}
	}
	// A block on top: the state hash chains on the genesis hash, which
	// covers the settings.
	if err := NewLocal(c, chaintest.Key("a")).Deposit(ctx, 1); err != nil {
		t.Fatal(err)
	}
	other, _ := newTestChainWith(t, t.TempDir(), 2*time.Millisecond, contract.DefaultParams())
	if err := NewLocal(other, chaintest.Key("a")).Deposit(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if c.AppHash() == other.AppHash() {
		t.Fatal("the same block on chains with other settings gave the same state hash")
	}
	c.Close()

	reopen := func(p contract.Params) (*Chain, error) {
		cfg := DefaultConfig(dir)
		cfg.BlockInterval, cfg.NoSync, cfg.Params = 0, true, p
		return Open(cfg)
	}
	// Zero: the stored settings.
	c2, err := reopen(contract.Params{})
	if err != nil {
		t.Fatal(err)
	}
	if c2.Params() != p {
		t.Fatalf("reopened with %+v", c2.Params())
	}
	c2.Close()
	// Others: refused, and the chain is left as it was.
	other2 := p
	other2.HeartbeatTTL = 4 * time.Second
	if _, err := reopen(other2); !errors.Is(err, ErrParamsDiffer) {
		t.Fatalf("reopen with other settings: %v", err)
	}
	if _, err := reopen(contract.DefaultParams()); !errors.Is(err, ErrParamsDiffer) {
		t.Fatalf("reopen with the defaults: %v", err)
	}
	c3, err := reopen(p)
	if err != nil {
		t.Fatal(err)
	}
	c3.Close()
}

func TestParamsRefusedWhenNonsense(t *testing.T) {
	for _, edit := range []func(*contract.Params){
		func(p *contract.Params) { p.HeartbeatTTL = 0 },
		func(p *contract.Params) { p.BanDuration = -time.Second },
		func(p *contract.Params) { p.BanDuration = p.HeartbeatTTL / 2 },
	} {
		p := contract.DefaultParams()
		edit(&p)
		cfg := DefaultConfig(t.TempDir())
		cfg.Params = p
		if _, err := Open(cfg); !errors.Is(err, contract.ErrBadParams) {
			t.Fatalf("Open with %+v: %v", p, err)
		}
	}
}
