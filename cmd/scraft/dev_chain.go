package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/scraft/scraft/internal/backoff"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/comet"
	"github.com/scraft/scraft/settlement/devchain"
)

// devChain is the settlement chain of `scraft dev`: one embedded devchain
// (the default), or four CometBFT validators in this process (--chain
// comet) that the nodes and players read through a quorum.
type devChain struct {
	// addr and keys are what CLI commands take as --chain and --chain-key
	// (known once serve ran).
	addr string
	keys []protocol.Address

	mu      sync.Mutex
	clients map[protocol.Address]*devchain.Client
	dial    func(*protocol.Key) (*devchain.Client, error)
	serveFn func(addr string) (string, error)
	closers []func()
}

// client returns the chain client signing with k (one per key, kept).
func (d *devChain) client(k *protocol.Key) *devchain.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.clients[k.Address()]; ok {
		return c
	}
	c, err := d.dial(k)
	if err != nil {
		// The addresses and keys are this process's own: a failure here
		// is a bug, not an input.
		panic(fmt.Sprintf("dev chain client: %v", err))
	}
	d.clients[k.Address()] = c
	d.closers = append(d.closers, func() { c.Close() })
	return c
}

// serve makes the chain's API reachable for the CLI: the devchain's on
// addr; a comet chain's validators serve theirs already.
func (d *devChain) serve(addr string) error {
	a, err := d.serveFn(addr)
	if err != nil {
		return err
	}
	d.addr = a
	return nil
}

func (d *devChain) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
}

func openDevChain(ctx context.Context, o devOptions, say func(string, ...any)) (*devChain, error) {
	d := &devChain{clients: map[protocol.Address]*devchain.Client{}}
	switch o.chain {
	case "", "dev":
		dir := filepath.Join(o.data, "chain")
		say("starting the dev chain in %s", dir)
		cfg := devchain.DefaultConfig(dir)
		cfg.BlockInterval = 50 * time.Millisecond
		cfg.Logger = o.logger
		chain, err := devchain.Open(cfg)
		if err != nil {
			return nil, err
		}
		d.closers = append(d.closers, func() { chain.Close() })
		key, _, _, err := loadChainKey(dir, "")
		if err != nil {
			d.close()
			return nil, fmt.Errorf("chain key: %w", err)
		}
		d.keys = []protocol.Address{key.Address()}
		d.dial = func(k *protocol.Key) (*devchain.Client, error) { return devchain.NewLocal(chain, k), nil }
		d.serveFn = func(addr string) (string, error) {
			g, err := devchain.NewGRPCServer(chain, key)
			if err != nil {
				return "", err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return "", fmt.Errorf("chain API on %s (kept in %s): %w", addr, devWorldFile, err)
			}
			go g.Serve(ln)
			d.closers = append(d.closers, g.Stop)
			return ln.Addr().String(), nil
		}
		return d, nil
	case "comet":
		tn, err := devTestnet(filepath.Join(o.data, "comet"), say)
		if err != nil {
			return nil, err
		}
		for i, home := range tn.Homes {
			v, err := comet.Start(comet.Config{Home: home, Logger: o.logger.Named(fmt.Sprintf("validator%d", i))})
			if err != nil {
				d.close()
				return nil, fmt.Errorf("validator %d: %w", i, err)
			}
			d.closers = append(d.closers, func() { v.Close() })
		}
		d.keys = tn.ChainKeys
		f := (len(tn.APIs) - 1) / 3
		d.dial = func(k *protocol.Key) (*devchain.Client, error) {
			return comet.DialQuorum(tn.APIs, k, f, devchain.WithChainKeys(tn.ChainKeys...))
		}
		d.serveFn = func(string) (string, error) { return strings.Join(tn.APIs, ","), nil }
		// The validators find each other and make their first blocks.
		probe, _ := protocol.GenerateKey(nil)
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		b := backoff.New(backoff.Policy{Initial: 50 * time.Millisecond, Max: time.Second})
		for {
			h, err := d.client(probe).Head(wctx)
			if err == nil && h.Height > 0 {
				break
			}
			if !b.Wait(wctx) {
				d.close()
				return nil, fmt.Errorf("the validators made no block within a minute: %v", err)
			}
		}
		return d, nil
	default:
		return nil, fmt.Errorf("--chain %q: dev or comet", o.chain)
	}
}

// devTestnet writes a local network of 4 validators' homes in dir, or
// reads the one written there before (testnet.json).
func devTestnet(dir string, say func(string, ...any)) (*comet.Testnet, error) {
	file := filepath.Join(dir, "testnet.json")
	if b, err := os.ReadFile(file); err == nil {
		var tn comet.Testnet
		if err := json.Unmarshal(b, &tn); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		say("starting the 4 CometBFT validators in %s", dir)
		return &tn, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	say("writing and starting a local chain of 4 CometBFT validators in %s", dir)
	tn, err := comet.WriteTestnet(comet.TestnetConfig{Dir: dir, Validators: 4})
	if err != nil {
		return nil, err
	}
	b, _ := json.MarshalIndent(tn, "", "  ")
	if err := os.WriteFile(file, append(b, '\n'), 0o600); err != nil {
		return nil, err
	}
	return tn, nil
}
