package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/scraft/scraft/contracts"
)

func TestEncodeCallArgs(t *testing.T) {
	chat, err := contracts.Get("chat")
	if err != nil {
		t.Fatal(err)
	}
	hello, err := chat.EncodeArgs("send", []byte(`{"text":"hello"}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, function, json, hex string
		want                      []byte
		err                       string
	}{
		{"demo contract JSON", "chat::send", `{"text":"hello"}`, "", hello, ""},
		{"hex", "mygame::move", "", "0x0102ff", []byte{1, 2, 0xff}, ""},
		{"no args", "mygame::reset", "", "", nil, ""},
		{"JSON for an unknown contract", "mygame::move", `{"x":1}`, "", nil, "--args-hex"},
		{"JSON that does not fit the ABI", "chat::send", `{"txt":"x"}`, "", nil, "bad arguments"},
		{"bad hex", "chat::send", "", "zz", nil, "--args-hex"},
		{"bad function", "send", "", "", nil, "contract::name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := encodeCallArgs(tc.function, tc.json, tc.hex)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("got %x, %v; want %x", got, err, tc.want)
			}
		})
	}
}

func TestClientCommandsNeedFlags(t *testing.T) {
	for _, cmd := range []string{"call", "subscribe", "status", "leave", "close"} {
		if _, err := run(t, cmd); err == nil || !strings.Contains(err.Error(), "required flag") {
			t.Fatalf("%s without flags: %v", cmd, err)
		}
	}
}
