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
