package client

import (
	"context"
	"strings"
	"testing"

	"github.com/scraft/scraft/protocol"
)

func TestDialRefusesAddressWithoutPort(t *testing.T) {
	k, _ := protocol.GenerateKey(nil)
	for _, a := range []string{"localhost", "127.0.0.1", "node.example:", "node.example:http", "[::1]:70000"} {
		_, err := Dial(context.Background(), k, []protocol.Address{k.Address()}, a)
		if err == nil || !strings.Contains(err.Error(), "node address") {
			t.Errorf("Dial(%q): %v, want a node address error", a, err)
		}
	}
	for _, a := range []string{"127.0.0.1:7500", "[::1]:7500", "node.example:7500", ":7500"} {
		if err := checkNodeAddr(a); err != nil {
			t.Errorf("checkNodeAddr(%q): %v", a, err)
		}
	}
}
