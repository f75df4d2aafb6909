package contract

import (
	"errors"
	"testing"
	"time"

	"github.com/scraft/scraft/protocol"
)

// shortParams are a test chain's settings: every window far from its
// default, so a rule that read a default would show.
func shortParams() Params {
	p := DefaultParams()
	p.InitialBalance = 5000
	p.HeartbeatTTL = 2 * time.Second
	p.BanDuration = 3 * time.Second
	p.VoteWindow = 4 * time.Second
	p.CensorshipWindow = 1500 * time.Millisecond
	p.ReportCooldown = 6 * time.Second
	return p
}

// TestParamsRules: the rules read each window from the chain's settings in
// its state, never the defaults.
func TestParamsRules(t *testing.T) {
	p := shortParams()
	h := newHarnessWith(t, p)
	if got := h.params(); got != p {
		t.Fatalf("settings %+v, want %+v", got, p)
	}
	h.channel("alice", "bob", "carol")
	if a := GetAccount(h.st, h.params(), h.addr("alice")); a.Balance != p.InitialBalance-100 {
		t.Fatalf("alice holds %d, want %d", a.Balance, p.InitialBalance-100)
	}

	// The heartbeat lasts HeartbeatTTL, not 15 s.
	h.keepAll("alice", "bob", "carol")
	h.advance(p.HeartbeatTTL - 10*time.Millisecond)
	_, err := h.call("bob", &ClaimLeader{Channel: h.ch, Epoch: 1})
	wantErr(t, err, ErrLeaderValid)
	h.keepAll("bob", "carol")
	h.advance(20 * time.Millisecond)
	h.must("bob", &ClaimLeader{Channel: h.ch, Epoch: 1})

	// A censorship complaint's answer window is CensorshipWindow.
	tx := protocol.SignTx(h.key("carol"), protocol.Tx{Channel: h.ch, Nonce: 1, Function: "chat::send"})
	cid, err := h.propose("carol", protocol.ProposalCensorship, &protocol.Censorship{Accused: h.addr("bob"), Tx: *tx})
	if err != nil {
		t.Fatal(err)
	}
	cp, _ := GetProposal(h.st, h.ch, cid)
	if want := h.now + p.CensorshipWindow.Milliseconds(); cp.DeadlineMs != want {
		t.Fatalf("complaint deadline %d, want %d", cp.DeadlineMs, want)
	}

	// A punish case takes votes for VoteWindow; executed, it bans for
	// BanDuration.
	pid, err := h.propose("carol", protocol.ProposalPunish, h.punishment("bob"))
	if err != nil {
		t.Fatal(err)
	}
	pp, _ := GetProposal(h.st, h.ch, pid)
	if want := h.now + p.VoteWindow.Milliseconds(); pp.DeadlineMs != want {
		t.Fatalf("punish deadline %d, want %d", pp.DeadlineMs, want)
	}
	h.must("alice", &Vote{Channel: h.ch, Proposal: pid, Option: protocol.VoteFor})
	h.must("carol", &ExecuteProposal{Channel: h.ch, Proposal: pid})
	if ban := GetBan(h.st, h.ch, h.addr("bob")); ban != h.now+p.BanDuration.Milliseconds() {
		t.Fatalf("ban until %d, want %d", ban, h.now+p.BanDuration.Milliseconds())
	}
}

func TestParamsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Params)
		ok   bool
	}{
		{"defaults", func(*Params) {}, true},
		{"short", func(p *Params) { *p = shortParams() }, true},
		{"zero ttl", func(p *Params) { p.HeartbeatTTL = 0 }, false},
		{"negative ban", func(p *Params) { p.BanDuration = -time.Second }, false},
		{"ttl below a second", func(p *Params) {
			p.HeartbeatTTL, p.BanDuration, p.VoteWindow = 500*time.Millisecond, time.Second, time.Second
		}, false},
		{"ban shorter than ttl", func(p *Params) { p.BanDuration = p.HeartbeatTTL - time.Millisecond }, false},
		{"vote window shorter than ttl", func(p *Params) { p.VoteWindow = time.Second }, false},
		{"zero censorship window", func(p *Params) { p.CensorshipWindow = 0 }, false},
		{"zero cooldown", func(p *Params) { p.ReportCooldown = 0 }, false},
		{"fraction of a millisecond", func(p *Params) { p.CensorshipWindow = time.Second + time.Microsecond }, false},
		{"beyond 30 days", func(p *Params) { p.ReportCooldown = MaxPolicyInterval + time.Millisecond }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultParams()
			tc.edit(&p)
			err := p.Validate()
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadParams)) {
				t.Fatalf("Validate: %v, want ok %v", err, tc.ok)
			}
			if !tc.ok {
				if InitGenesis(MemStore{}, p) == nil {
					t.Fatal("InitGenesis took bad settings")
				}
				// Decoding bytes that carry them fails too.
				e := protocol.NewEncoder(48)
				p.Encode(e)
				if _, err := DecodeParams(e.Out()); err == nil {
					t.Fatal("decoded bad settings")
				}
			}
		})
	}
}

func TestParamsEncoding(t *testing.T) {
	p := shortParams()
	b := p.Bytes()
	got, err := DecodeParams(b)
	if err != nil || got != p {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, bad := range [][]byte{nil, b[:len(b)-1], append(append([]byte{}, b...), 0), append([]byte{2}, b[1:]...)} {
		if _, err := DecodeParams(bad); err == nil {
			t.Fatalf("decoded %x", bad)
		}
	}
	if GenesisHash(p) == GenesisHash(DefaultParams()) {
		t.Fatal("the genesis hash does not cover the settings")
	}
	st := MemStore{}
	if err := InitGenesis(st, p); err != nil {
		t.Fatal(err)
	}
	if err := InitGenesis(st, DefaultParams()); !errors.Is(err, ErrBadParams) {
		t.Fatalf("second genesis: %v", err)
	}
	if got, ok := GetParams(st); !ok || got != p {
		t.Fatalf("stored %+v %v", got, ok)
	}
}

func FuzzDecodeParams(f *testing.F) {
	f.Add(DefaultParams().Bytes())
	f.Add(shortParams().Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeParams(b)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("decoded settings that do not validate: %v", err)
		}
	})
}
