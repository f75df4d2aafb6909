package vm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/protocol"
)

// FuzzHostFunctions feeds arbitrary command lists to abi.wasm's "run",
// which forwards them as arguments and pointers to every host function.
// Whatever the bytes, the node must not crash, a failed call must leave no
// effects, and the same call must give the same result twice.
func FuzzHostFunctions(f *testing.F) {
	a := addr(1)
	for _, s := range []*script{
		new(script).put(a, "f::R", []byte("value")).get(a, "f::R", scratch, 100).flush(),
		new(script).del(addr(2), "f::R").emit("f::E", []byte("x")).op(opOutput, scratch, 8),
		new(script).op(opInputRead, 8000).op(opSender, 65520).op(opHeight).op(opTimestamp).flush(),
		new(script).abort(3, "stop"),
		new(script).op(opResGet, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff),
		new(script).op(opResPut, 65530, 0, 300, 0, 0x7fffffff),
		new(script).op(opEmit, 0, 256, 0, 65536),
	} {
		f.Add(s.bytes())
	}
	e := newTestEngine(f, Config{MemoryLimitPages: 4, MaxIdleInstances: 2})
	m := deployTestdata(f, e, "abi")
	store := mapStore{
		{Account: addr(1), Type: "f::R"}: []byte("stored"),
		{Account: addr(2), Type: "f::R"}: []byte{},
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		c := Call{Function: "run", Args: input, Sender: addr(9), Height: 1, TimestampMs: 2, Gas: 2_000_000}
		r1 := m.Call(context.Background(), store, c)
		r2 := m.Call(context.Background(), store, c)
		if !bytes.Equal(resultBytes(r1), resultBytes(r2)) {
			t.Fatalf("two runs differ:\n%+v\n%+v", r1, r2)
		}
		if strings.Contains(r1.Message, "internal error") {
			t.Fatalf("internal error: %s", r1.Message)
		}
		if r1.GasUsed > c.Gas {
			t.Fatalf("used %d gas of %d", r1.GasUsed, c.Gas)
		}
		if r1.Status != protocol.StatusOK {
			if r1.ChangeSet.Len() != 0 || r1.Events != nil || r1.Output != nil {
				t.Fatalf("failed call kept effects: %+v", r1)
			}
			return
		}
		if _, err := protocol.DecodeChangeSet(r1.ChangeSet.Bytes()); err != nil {
			t.Fatalf("change set does not round-trip: %v", err)
		}
		if err := store.Clone().Apply(r1.ChangeSet); err != nil {
			t.Fatalf("change set does not apply to its store: %v", err)
		}
	})
}

// FuzzDeploy feeds arbitrary bytes to Deploy: it must refuse them with a
// DeployError or deploy a module whose functions can be called, never
// panic or hang.
func FuzzDeploy(f *testing.F) {
	ents, _ := filepath.Glob(filepath.Join("testdata", "*.wasm"))
	for _, p := range ents {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, n := range contracts.Names() {
		if c, err := contracts.Get(n); err == nil {
			f.Add(c.Wasm)
		}
	}
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, wasm []byte) {
		// A new engine per input: deployed modules stay until Close.
		e, err := NewEngine(context.Background(), Config{MemoryLimitPages: 4, MaxIdleInstances: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close(context.Background())
		m, err := e.Deploy(context.Background(), wasm)
		if err != nil {
			var de *DeployError
			if !errors.As(err, &de) {
				t.Fatalf("not a DeployError: %v", err)
			}
			if strings.Contains(de.Msg, "internal error") {
				t.Fatalf("internal error: %v", err)
			}
			return
		}
		for _, fn := range m.Functions() {
			r := m.Call(context.Background(), nil, Call{Function: fn, Args: []byte{1, 2, 3}, Gas: 100_000})
			if strings.Contains(r.Message, "internal error") {
				t.Fatalf("%s: internal error: %s", fn, r.Message)
			}
		}
	})
}
