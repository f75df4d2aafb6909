package contracts

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/scraft/scraft/protocol"
)

// testABI covers every type of the schema language.
const testABI = `{
  "name": "t",
  "structs": [
    {"name": "Pt", "fields": [{"name": "x", "type": "i32"}, {"name": "y", "type": "i64"}]},
    {"name": "All", "fields": [
      {"name": "a", "type": "u8"}, {"name": "b", "type": "u16"}, {"name": "c", "type": "u32"},
      {"name": "d", "type": "u64"}, {"name": "e", "type": "bool"}, {"name": "f", "type": "string"},
      {"name": "g", "type": "bytes"}, {"name": "h", "type": "address"},
      {"name": "i", "type": "vec<Pt>"}, {"name": "j", "type": "option<u16>"},
      {"name": "k", "type": "option<vec<string>>"}
    ]}
  ],
  "functions": [
    {"name": "f", "args": [{"name": "all", "type": "All"}, {"name": "n", "type": "u64"}], "output": "vec<u8>"},
    {"name": "none", "args": []}
  ],
  "resources": [{"type": "t::All", "value": "All"}],
  "events": [{"type": "t::Pt", "value": "Pt"}]
}`

func mustABI(t testing.TB) *ABI {
	t.Helper()
	a, err := ParseABI([]byte(testABI))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestEncodeArgsRoundTrip(t *testing.T) {
	a := mustABI(t)
	in := `{"all":{"a":255,"b":65535,"c":4294967295,"d":18446744073709551615,"e":true,"f":"héllo <x>",` +
		`"g":"0x00ff","h":"0x000102030405060708090a0b0c0d0e0f","i":[{"x":-1,"y":-9223372036854775808},{"x":2147483647,"y":3}],` +
		`"j":null,"k":["a",""]},"n":7}`
	b, err := a.EncodeArgs("f", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	// The same bytes by hand with protocol.Encoder.
	var e protocol.Encoder
	e.U8(255)
	e.U16(65535)
	e.U32(4294967295)
	e.U64(18446744073709551615)
	e.Bool(true)
	e.String("héllo <x>")
	e.Bytes([]byte{0, 0xff})
	e.Fixed([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	e.Uleb(2)
	e.U32(0xffffffff)
	e.I64(-9223372036854775808)
	e.U32(2147483647)
	e.I64(3)
	e.U8(0)
	e.U8(1)
	e.Uleb(2)
	e.String("a")
	e.String("")
	e.U64(7)
	if !bytes.Equal(b, e.Out()) {
		t.Fatalf("encoding\n got %x\nwant %x", b, e.Out())
	}
	out, err := a.DecodeArgs("f", b)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Fatalf("round trip\n got %s\nwant %s", out, in)
	}

	// Decimal strings for integers and a missing 0x on bytes are accepted.
	b2, err := a.EncodeArgs("f", []byte(strings.NewReplacer(`"d":18446744073709551615`, `"d":"18446744073709551615"`, `"0x00ff"`, `"00ff"`).Replace(in)))
	if err != nil || !bytes.Equal(b2, b) {
		t.Fatalf("lenient forms: %v", err)
	}
	for _, empty := range []string{"", "  ", "{}", "null"} {
		if b, err := a.EncodeArgs("none", []byte(empty)); err != nil || len(b) != 0 {
			t.Fatalf("none(%q) = %x, %v", empty, b, err)
		}
	}
}

func TestEncodeArgsErrors(t *testing.T) {
	a := mustABI(t)
	good := `{"a":1,"b":2,"c":3,"d":4,"e":false,"f":"","g":"","h":"0x000102030405060708090a0b0c0d0e0f","i":[],"j":1,"k":null}`
	with := func(field, val string) string {
		i := strings.Index(good, `"`+field+`":`)
		j := strings.IndexAny(good[i:], ",}")
		if field == "h" || field == "i" {
			j = strings.Index(good[i+1:], `,"`) + 1
		}
		return `{"all":` + good[:i] + `"` + field + `":` + val + good[i+j:] + `,"n":1}`
	}
	if _, err := a.EncodeArgs("f", []byte(with("a", "1"))); err != nil {
		t.Fatalf("good args: %v", err)
	}
	tests := []struct {
		name, fn, args, want string
	}{
		{"unknown function", "nope", `{}`, "unknown function: t::nope (have f, none)"},
		{"not an object", "f", `[1]`, "t::f: want a JSON object, got an array"},
		{"broken JSON", "f", `{"n":`, "t::f: bad JSON"},
		{"missing field", "f", `{"n":1}`, `missing field "all" (want {all: All, n: u64})`},
		{"unknown field", "f", `{"n":1,"x":2,"all":{}}`, `unknown field "x"`},
		{"u8 overflow", "f", with("a", "256"), `t::f.all.a: want u8 (0..255), got "256"`},
		{"negative u16", "f", with("b", "-1"), `want u16 (0..65535), got "-1"`},
		{"fraction", "f", with("c", "1.5"), `want u32 (0..4294967295), got "1.5"`},
		{"u64 as bool", "f", with("d", "true"), "t::f.all.d: want u64, got a bool"},
		{"bool as number", "f", with("e", "1"), "t::f.all.e: want bool, got number 1"},
		{"string as number", "f", with("f", "5"), "t::f.all.f: want string, got number 5"},
		{"odd hex", "f", with("g", `"0xabc"`), "t::f.all.g: want bytes as a hex string"},
		{"short address", "f", with("h", `"0x0102"`), `t::f.all.h: want an address "0x" + 32 hex digits, got "0x0102"`},
		{"address without 0x", "f", with("h", `"000102030405060708090a0b0c0d0e0f"`), "t::f.all.h: want an address"},
		{"vec not array", "f", with("i", `{}`), "t::f.all.i: want a JSON array of Pt, got an object"},
		{"bad element", "f", with("i", `[{"x":1,"y":2},{"x":"a","y":0}]`), `t::f.all.i[1].x: want i32, got "a"`},
		{"i32 overflow", "f", with("i", `[{"x":2147483648,"y":0}]`), `want i32, got "2147483648"`},
		{"option value", "f", with("j", `"x"`), `t::f.all.j: want u16 (0..65535), got "x"`},
		{"args to none", "none", `{"x":1}`, `unknown field "x" (want no fields)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.EncodeArgs(tc.fn, []byte(tc.args))
			if err == nil {
				t.Fatalf("no error for %s", tc.args)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			if tc.fn != "nope" && !errors.Is(err, ErrBadArgs) {
				t.Fatalf("error %v is not ErrBadArgs", err)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	a := mustABI(t)
	tests := []struct {
		name, typ, hex, want string
	}{
		{"truncated", "u64", "0102", "truncated"},
		{"trailing", "u8", "0102", "trailing"},
		{"bad bool", "bool", "02", "bool byte 2"},
		{"bad option tag", "option<u8>", "0201", "option tag 2"},
		{"bad utf-8", "string", "02fffe", "not valid UTF-8"},
		{"over-long length", "bytes", "8000", "over-long"},
		{"huge vec", "vec<u8>", "ffffffff0f", "exceeds limit"},
		{"unknown type", "Nope", "", "unknown type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := hex.DecodeString(tc.hex)
			_, err := a.DecodeValue(tc.typ, b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := a.DecodeOutput("none", []byte{1}); !errors.Is(err, ErrBadValue) {
		t.Fatalf("output of none: %v", err)
	}
	if got, err := a.DecodeEvent("t::Pt", []byte{1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}); err != nil || string(got) != `{"x":1,"y":2}` {
		t.Fatalf("event = %s, %v", got, err)
	}
}

func TestParseABIErrors(t *testing.T) {
	tests := []struct{ name, abi, want string }{
		{"unknown key", `{"name":"x","bogus":1}`, "unknown field"},
		{"bad name", `{"name":"a b"}`, "bad contract name"},
		{"unknown type", `{"name":"x","functions":[{"name":"f","args":[{"name":"a","type":"u128"}]}]}`, `unknown type "u128"`},
		{"duplicate function", `{"name":"x","functions":[{"name":"f","args":[]},{"name":"f","args":[]}]}`, "duplicate function"},
		{"duplicate field", `{"name":"x","functions":[{"name":"f","args":[{"name":"a","type":"u8"},{"name":"a","type":"u8"}]}]}`, "duplicate field"},
		{"self-containing struct", `{"name":"x","structs":[{"name":"A","fields":[{"name":"a","type":"option<B>"}]},{"name":"B","fields":[{"name":"b","type":"vec<A>"}]}]}`, "contains itself"},
		{"struct named like a primitive", `{"name":"x","structs":[{"name":"u8","fields":[]}]}`, "bad struct name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseABI([]byte(tc.abi))
			if err == nil || !errors.Is(err, ErrBadABI) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrBadABI containing %q", err, tc.want)
			}
		})
	}
}

func TestGet(t *testing.T) {
	if _, err := Get("nope"); !errors.Is(err, ErrUnknownContract) {
		t.Fatalf("Get(nope) = %v", err)
	}
	for _, n := range Names() {
		c, err := Get(n)
		if err != nil {
			t.Fatal(err)
		}
		if c.Name != n || len(c.Wasm) == 0 || c.ABI.Name != n {
			t.Fatalf("contract %s incomplete", n)
		}
	}
}

func FuzzDecodeValue(f *testing.F) {
	a := mustABI(f)
	f.Add([]byte{1, 2, 3})
	f.Add(bytes.Repeat([]byte{0}, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := a.DecodeValue("All", b)
		if err != nil {
			return
		}
		// What decodes re-encodes to the same bytes.
		back, err := a.EncodeValue("All", j)
		if err != nil {
			t.Fatalf("re-encode %s: %v", j, err)
		}
		if !bytes.Equal(back, b) {
			t.Fatalf("round trip changed %x to %x", b, back)
		}
	})
}

func FuzzEncodeArgs(f *testing.F) {
	a := mustABI(f)
	f.Add(`{"n":1,"all":{}}`)
	f.Add(`{"all":{"a":1,"b":2,"c":3,"d":4,"e":false,"f":"","g":"","h":"0x000102030405060708090a0b0c0d0e0f","i":[{"x":1,"y":2}],"j":1,"k":["x"]},"n":1}`)
	f.Fuzz(func(t *testing.T, s string) {
		b, err := a.EncodeArgs("f", []byte(s))
		if err != nil {
			if !errors.Is(err, ErrBadArgs) {
				t.Fatalf("error %v is not ErrBadArgs", err)
			}
			return
		}
		if _, err := a.DecodeArgs("f", b); err != nil {
			t.Fatalf("encoded args do not decode: %v", err)
		}
	})
}
