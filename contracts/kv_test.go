package contracts

import (
	"os"
	"testing"
)

// loadTestContract reads a contract that is built by build.sh but not
// embedded: kv, the register the integration soak checks histories on.
func loadTestContract(t testing.TB, name string) *Contract {
	t.Helper()
	wasm, err := os.ReadFile(name + "/" + name + ".wasm")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(name + "/abi.json")
	if err != nil {
		t.Fatal(err)
	}
	abi, err := ParseABI(raw)
	if err != nil {
		t.Fatal(err)
	}
	return &Contract{Name: name, Wasm: wasm, ABI: abi}
}

// TestKVRun runs put, get and cas on the stub host: a key never written
// reads "", a put is read back, cas swaps only on the expected value, and
// keys are apart.
func TestKVRun(t *testing.T) {
	h := newTestHostFor(t, loadTestContract(t, "kv"))
	u := addr(7)
	get := func(key string) string {
		t.Helper()
		j, err := h.abi.DecodeOutput("get", h.mustCall(u, "get", `{"key":`+key+`}`))
		if err != nil {
			t.Fatal(err)
		}
		return string(j)
	}
	cas := func(args string) string {
		t.Helper()
		j, err := h.abi.DecodeOutput("cas", h.mustCall(u, "cas", args))
		if err != nil {
			t.Fatal(err)
		}
		return string(j)
	}
	if v := get("1"); v != `""` {
		t.Fatalf("unwritten key reads %s", v)
	}
	h.mustCall(u, "put", `{"key":1,"value":"a"}`)
	if v := get("1"); v != `"a"` {
		t.Fatalf("get 1 after put a: %s", v)
	}
	if v := get("2"); v != `""` {
		t.Fatalf("key 2 after a put to key 1: %s", v)
	}
	if ok := cas(`{"key":1,"expect":"b","value":"c"}`); ok != "false" {
		t.Fatalf("cas from a wrong value: %s", ok)
	}
	if v := get("1"); v != `"a"` {
		t.Fatalf("a failed cas changed the value to %s", v)
	}
	if ok := cas(`{"key":1,"expect":"a","value":"c"}`); ok != "true" {
		t.Fatalf("cas from the right value: %s", ok)
	}
	if v := get("1"); v != `"c"` {
		t.Fatalf("get after cas: %s", v)
	}
	if ok := cas(`{"key":3,"expect":"","value":"x"}`); ok != "true" {
		t.Fatalf("cas of an unwritten key from \"\": %s", ok)
	}
	if r := h.resource(derived("kvkv", 1, 0, 0), "kv::Entry"); r != `{"value":"c"}` {
		t.Fatalf("stored entry %s", r)
	}

	// Bad input aborts 1: trailing bytes, a value over 256 bytes.
	if ab := h.call(u, "get", []byte{1, 0, 0, 0, 9}); ab == nil || ab.code != 1 {
		t.Fatalf("get with a trailing byte: %v", ab)
	}
	long := append([]byte{1, 0, 0, 0, 0x81, 0x02}, make([]byte, 257)...)
	if ab := h.call(u, "put", long); ab == nil || ab.code != 1 {
		t.Fatalf("put of 257 bytes: %v", ab)
	}
}
