package contract

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/scraft/scraft/protocol"
)

const testABI = `{"name":"chat","structs":[],"functions":[],"resources":[],"events":[]}`

func TestCreateChannelRecordsABI(t *testing.T) {
	h := newHarness(t)
	rc := h.must("creator", &CreateChannel{Contract: "chat", Code: testCode, ABI: []byte(testABI)})
	got, err := GetABI(h.st, rc.Channel)
	if err != nil || string(got.JSON) != testABI || got.Hash != ABIHashOf([]byte(testABI)) {
		t.Fatalf("ABI %+v, %v", got, err)
	}
	// A second channel with the same ABI names it by hash and does not
	// store it again.
	rc2 := h.must("other", &CreateChannel{Contract: "chat", CodeHash: CodeHashOf(testCode), ABI: []byte(testABI)})
	for _, w := range rc2.Writes {
		if w.Key[0] == prefixABI {
			t.Fatal("second channel wrote the ABI again")
		}
	}
	if got, err := GetABI(h.st, rc2.Channel); err != nil || got.Hash != ABIHashOf([]byte(testABI)) {
		t.Fatalf("second channel's ABI %+v, %v", got, err)
	}
	// A channel without one answers ErrNoABI; an unknown channel
	// ErrNoChannel.
	rc3 := h.must("creator", &CreateChannel{Contract: "chat", CodeHash: CodeHashOf(testCode)})
	if _, err := GetABI(h.st, rc3.Channel); !errors.Is(err, ErrNoABI) {
		t.Fatalf("channel without an ABI: %v", err)
	}
	if _, err := GetABI(h.st, protocol.ChannelID{9}); !errors.Is(err, ErrNoChannel) {
		t.Fatalf("unknown channel: %v", err)
	}
}

func TestCreateChannelRefusesBadABI(t *testing.T) {
	huge := `{"name":"chat","doc":"` + strings.Repeat("x", MaxABILen) + `"}`
	for _, tc := range []struct {
		name string
		abi  string
		want error
	}{
		{"not JSON", `{"name":`, ErrMalformed},
		{"not an object", `["chat"]`, ErrMalformed},
		{"a bare string", `"chat"`, ErrMalformed},
		{"trailing garbage", `{"name":"chat"} x`, ErrMalformed},
		{"invalid UTF-8", "{\"name\":\"\xff\"}", ErrMalformed},
		{"only spaces", "   ", ErrMalformed},
		{"too large", huge, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			rc, err := h.call("creator", &CreateChannel{Contract: "chat", Code: testCode, ABI: []byte(tc.abi)})
			wantErr(t, err, tc.want)
			if len(rc.Writes) != 0 {
				t.Fatalf("a refused call wrote %d records", len(rc.Writes))
			}
		})
	}
}

// TestCreateChannelABIEncoding checks that the ABI crosses the call's
// encoding with and without versions, and that an empty ABI written out
// is refused.
func TestCreateChannelABIEncoding(t *testing.T) {
	for _, c := range []*CreateChannel{
		{Contract: "chat", Code: testCode, ABI: []byte(testABI)},
		{Contract: "chat", Code: testCode, ABI: []byte(testABI), Config: ChannelConfig{VMVersion: 2, GasTableVersion: 3}},
		{Contract: "chat", Code: testCode, Config: ChannelConfig{VMVersion: 2, GasTableVersion: 3}},
		{Contract: "chat", Code: testCode},
	} {
		raw := EncodeCall(c)
		back, err := DecodeCall(raw)
		if err != nil {
			t.Fatal(err)
		}
		b := back.(*CreateChannel)
		if !bytes.Equal(b.ABI, c.ABI) || b.Config != c.Config {
			t.Fatalf("call %+v came back %+v", c, b)
		}
	}
	e := protocol.NewEncoder(64)
	e.U8(uint8(CallCreateChannel))
	(&CreateChannel{Contract: "chat", Code: testCode}).encode(e)
	e.U32(0)
	e.U32(0)
	e.Bytes(nil)
	if _, err := DecodeCall(e.Out()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty ABI written out: %v", err)
	}
}
