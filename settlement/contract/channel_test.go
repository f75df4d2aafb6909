package contract

import (
	"testing"
	"time"

	"github.com/scraft/scraft/protocol"
)

func TestCreateChannel(t *testing.T) {
	acc := protocol.Address{1}
	initial := protocol.State{{Account: acc, Type: "chat::ChatGroup"}: []byte("g")}
	tests := []struct {
		name  string
		setup func(h *harness)
		call  func(h *harness) *CreateChannel
		want  error
	}{
		{"with code", nil, func(h *harness) *CreateChannel {
			return &CreateChannel{Contract: "chat", Code: testCode, InitialState: initial,
				Labels: []Label{{"server_address", "a"}, {"world_address", "b"}},
				Config: ChannelConfig{TickInterval: 50 * time.Millisecond, SettleEveryTxs: 100, SettleInterval: time.Second, GasLimit: 1e6}}
		}, nil},
		{"by hash of stored code", func(h *harness) {
			h.must("creator", &CreateChannel{Contract: "chat", Code: testCode})
		}, func(h *harness) *CreateChannel {
			return &CreateChannel{Contract: "chat", CodeHash: CodeHashOf(testCode)}
		}, nil},
		{"hash of unknown code", nil, func(h *harness) *CreateChannel {
			return &CreateChannel{Contract: "chat", CodeHash: CodeHashOf([]byte("other"))}
		}, ErrMalformed},
		{"hash does not match code", nil, func(h *harness) *CreateChannel {
			return &CreateChannel{Contract: "chat", Code: testCode, CodeHash: CodeHashOf([]byte("other"))}
		}, ErrMalformed},
		{"no code", nil, func(h *harness) *CreateChannel { return &CreateChannel{Contract: "chat"} }, ErrMalformed},
		{"no name", nil, func(h *harness) *CreateChannel { return &CreateChannel{Code: testCode} }, ErrMalformed},
		{"code too large", nil, func(h *harness) *CreateChannel {
			return &CreateChannel{Contract: "chat", Code: make([]byte, MaxCodeLen+1)}
		}, ErrTooLarge},
		{"labels unsorted", nil, func(h *harness) *CreateChannel {
			return &CreateChannel{Contract: "chat", Code: testCode, Labels: []Label{{"b", ""}, {"a", ""}}}
		}, ErrMalformed},
		{"negative tick", nil, func(h *harness) *CreateChannel {
			return &CreateChannel{Contract: "chat", Code: testCode, Config: ChannelConfig{TickInterval: -1}}
		}, ErrMalformed},
		{"versions recorded", nil, func(h *harness) *CreateChannel {
			return &CreateChannel{Contract: "chat", Code: testCode, Config: ChannelConfig{VMVersion: 3, GasTableVersion: 7}}
		}, nil},
		{"gas limit at the ceiling", nil, func(h *harness) *CreateChannel {
			return &CreateChannel{Contract: "chat", Code: testCode, Config: ChannelConfig{GasLimit: MaxGasLimit}}
		}, nil},
		{"gas limit over the ceiling", nil, func(h *harness) *CreateChannel {
			return &CreateChannel{Contract: "chat", Code: testCode, Config: ChannelConfig{GasLimit: MaxGasLimit + 1}}
		}, ErrTooLarge},
		{"tick below a millisecond", nil, func(h *harness) *CreateChannel {
			return &CreateChannel{Contract: "chat", Code: testCode, Config: ChannelConfig{TickInterval: time.Microsecond}}
		}, ErrMalformed},
		{"tick not whole milliseconds", nil, func(h *harness) *CreateChannel {
			return &CreateChannel{Contract: "chat", Code: testCode, Config: ChannelConfig{TickInterval: 1500 * time.Microsecond}}
		}, ErrMalformed},
		{"tick over the ceiling", nil, func(h *harness) *CreateChannel {
			return &CreateChannel{Contract: "chat", Code: testCode, Config: ChannelConfig{TickInterval: MaxTickInterval + time.Millisecond}}
		}, ErrMalformed},
		{"settle interval over the ceiling", nil, func(h *harness) *CreateChannel {
			return &CreateChannel{Contract: "chat", Code: testCode, Config: ChannelConfig{SettleInterval: MaxPolicyInterval + 1}}
		}, ErrTooLarge},
		{"censorship window over the ceiling", nil, func(h *harness) *CreateChannel {
			return &CreateChannel{Contract: "chat", Code: testCode, Config: ChannelConfig{CensorshipWindow: MaxPolicyInterval + 1}}
		}, ErrTooLarge},
		{"initial state too large", nil, func(h *harness) *CreateChannel {
			st := protocol.State{}
			for i := 0; i < 20; i++ {
				st[protocol.ResourceKey{Account: protocol.Address{byte(i)}, Type: "chat::Big"}] = make([]byte, protocol.MaxValueLen)
			}
			return &CreateChannel{Contract: "chat", Code: testCode, InitialState: st}
		}, ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			if tc.setup != nil {
				tc.setup(h)
			}
			c := tc.call(h)
			rc, err := h.call("creator", c)
			wantErr(t, err, tc.want)
			if err != nil {
				return
			}
			ch, err := GetChannel(h.st, rc.Channel)
			if err != nil {
				t.Fatal(err)
			}
			if ch.Contract != c.Contract || ch.CodeHash != CodeHashOf(testCode) || ch.Config != c.Config || ch.Creator != h.addr("creator") {
				t.Fatalf("channel %+v", ch)
			}
			if code, err := GetCode(h.st, ch.CodeHash); err != nil || string(code) != string(testCode) {
				t.Fatalf("code %q, %v", code, err)
			}
			st, _ := GetSettledState(h.st, rc.Channel)
			if st.Hash() != c.InitialState.Hash() {
				t.Fatalf("settled state %v, want %v", st, c.InitialState)
			}
			if len(rc.Events) != 1 || rc.Events[0].Kind != EventChannelCreated {
				t.Fatalf("events %+v", rc.Events)
			}
		})
	}
}

// TestChannelVersionsEncoding checks that the versions cross the call and
// the record, and that bytes from before them still decode (as version 0,
// which stands for LegacyVersion).
func TestChannelVersionsEncoding(t *testing.T) {
	for _, cfg := range []ChannelConfig{{GasLimit: 5}, {GasLimit: 5, VMVersion: 2, GasTableVersion: 3}} {
		ch := Channel{ID: protocol.ChannelID{1}, Contract: "chat", Config: cfg, Members: 2}
		e := protocol.NewEncoder(64)
		ch.Encode(e)
		var got Channel
		d := protocol.NewDecoder(e.Out())
		got.Decode(d)
		if err := d.Finish(); err != nil || got.Config != cfg || got.Members != 2 {
			t.Fatalf("record %+v: got %+v, %v", cfg, got, err)
		}
		call := &CreateChannel{Contract: "chat", Code: testCode, Config: cfg}
		e = protocol.NewEncoder(64)
		call.encode(e)
		var back CreateChannel
		d = protocol.NewDecoder(e.Out())
		back.decode(d)
		if err := d.Finish(); err != nil || back.Config != cfg {
			t.Fatalf("call %+v: got %+v, %v", cfg, back.Config, err)
		}
	}
	var legacy ChannelConfig
	if legacy.VM() != LegacyVersion || legacy.GasTable() != LegacyVersion || legacy.Gas() != protocol.DefaultGasLimit {
		t.Fatalf("zero config: vm %d, gas table %d, gas %d", legacy.VM(), legacy.GasTable(), legacy.Gas())
	}
}

func TestCodeStoredOncePerHash(t *testing.T) {
	h := newHarness(t)
	a := h.must("creator", &CreateChannel{Contract: "chat", Code: testCode})
	b := h.must("other", &CreateChannel{Contract: "chat", Code: testCode})
	if a.Channel == b.Channel {
		t.Fatal("two channels got one id")
	}
	for _, w := range b.Writes {
		if w.Key[0] == prefixCode {
			t.Fatal("second channel wrote the code again")
		}
	}
}

func TestClose(t *testing.T) {
	tests := []struct {
		name string
		by   string
		want error
	}{
		{"by creator", "creator", nil},
		{"by member", "alice", nil},
		{"by outsider", "mallory", ErrNotMember},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.channel("alice", "bob")
			_, err := h.call(tc.by, &Close{Channel: h.ch})
			wantErr(t, err, tc.want)
			if err != nil {
				return
			}
			if !h.chanRec().Closed {
				t.Fatal("not closed")
			}
			for _, c := range []Call{&Close{Channel: h.ch}, &Join{Channel: h.ch}, &KeepAlive{Channel: h.ch}, &ClaimLeader{Channel: h.ch, Epoch: 1}} {
				if _, err := h.call("bob", c); !errorsIs(err, ErrChannelClosed) {
					t.Fatalf("%s on closed channel: %v", c.Kind(), err)
				}
			}
		})
	}
}

// TestDepartureKeyEncoding checks that a departure keeps the member's key
// and that a record from before keys still decodes, with none.
func TestDepartureKeyEncoding(t *testing.T) {
	k, err := protocol.KeyFromSeed(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	key := k.Public()
	for _, dp := range []Departure{{Address: protocol.Address{1}, JoinSeq: 2, Height: 3, Epoch: 4}, {Address: protocol.AddressOf(key), JoinSeq: 2, PublicKey: key}} {
		e := protocol.NewEncoder(64)
		dp.Encode(e)
		var got Departure
		d := protocol.NewDecoder(e.Out())
		got.Decode(d)
		if err := d.Finish(); err != nil || got.Address != dp.Address || got.Epoch != dp.Epoch || string(got.PublicKey) != string(dp.PublicKey) {
			t.Fatalf("departure %+v: got %+v, %v", dp, got, err)
		}
	}
}
