package contracts

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/scraft/scraft/protocol"
)

// addressLen is the byte length of an account address.
const addressLen = 16

// encoder turns JSON values into canonical encodings by type.
type encoder struct {
	abi *ABI
	e   protocol.Encoder
}

func badArg(where, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrBadArgs, where, fmt.Sprintf(format, args...))
}

// describe names a JSON value's kind for error messages.
func describe(raw json.RawMessage) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return "nothing"
	}
	switch t[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a bool"
	case 'n':
		return "null"
	default:
		if len(t) > 32 {
			t = append(t[:32:32], "..."...)
		}
		return "number " + string(t)
	}
}

func (enc *encoder) object(fields []Field, raw json.RawMessage, where string) error {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || t[0] != '{' {
		return badArg(where, "want a JSON object, got %s", describe(raw))
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(t, &m); err != nil {
		return badArg(where, "bad JSON: %v", err)
	}
	names := make([]string, len(fields))
	known := make(map[string]bool, len(fields))
	for i, f := range fields {
		names[i] = f.Name
		known[f.Name] = true
	}
	for _, k := range sortedKeys(m) {
		if !known[k] {
			return badArg(where, "unknown field %q (want %s)", k, fieldList(fields))
		}
	}
	for _, f := range fields {
		v, ok := m[f.Name]
		if !ok {
			return badArg(where, "missing field %q (want %s)", f.Name, fieldList(fields))
		}
		ft, err := enc.abi.typeOf(f.Type)
		if err != nil {
			return err
		}
		if err := enc.value(ft, v, where+"."+f.Name); err != nil {
			return err
		}
	}
	return nil
}

func fieldList(fields []Field) string {
	if len(fields) == 0 {
		return "no fields"
	}
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = f.Name + ": " + f.Type
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// jsonString unmarshals raw as a JSON string.
func jsonString(raw json.RawMessage) (string, bool) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || t[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(t, &s); err != nil {
		return "", false
	}
	return s, true
}

// integer reads a JSON number or a decimal string holding an integer.
func integer(raw json.RawMessage) (string, bool) {
	t := bytes.TrimSpace(raw)
	if s, ok := jsonString(t); ok {
		return s, true
	}
	if len(t) == 0 || !(t[0] == '-' || t[0] >= '0' && t[0] <= '9') {
		return "", false
	}
	var n json.Number
	if err := json.Unmarshal(t, &n); err != nil {
		return "", false
	}
	return n.String(), true
}

func (enc *encoder) value(t *typeNode, raw json.RawMessage, where string) error {
	switch t.kind {
	case kU8, kU16, kU32, kU64:
		s, ok := integer(raw)
		if !ok {
			return badArg(where, "want %s, got %s", t.name, describe(raw))
		}
		bits := map[kind]int{kU8: 8, kU16: 16, kU32: 32, kU64: 64}[t.kind]
		v, err := strconv.ParseUint(s, 10, bits)
		if err != nil {
			return badArg(where, "want %s (0..%d), got %q", t.name, uint64(math.MaxUint64)>>(64-bits), s)
		}
		switch t.kind {
		case kU8:
			enc.e.U8(uint8(v))
		case kU16:
			enc.e.U16(uint16(v))
		case kU32:
			enc.e.U32(uint32(v))
		default:
			enc.e.U64(v)
		}
	case kI32, kI64:
		s, ok := integer(raw)
		if !ok {
			return badArg(where, "want %s, got %s", t.name, describe(raw))
		}
		bits := 32
		if t.kind == kI64 {
			bits = 64
		}
		v, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			return badArg(where, "want %s, got %q", t.name, s)
		}
		if t.kind == kI32 {
			enc.e.U32(uint32(int32(v)))
		} else {
			enc.e.I64(v)
		}
	case kBool:
		switch string(bytes.TrimSpace(raw)) {
		case "true":
			enc.e.Bool(true)
		case "false":
			enc.e.Bool(false)
		default:
			return badArg(where, "want bool, got %s", describe(raw))
		}
	case kString:
		s, ok := jsonString(raw)
		if !ok {
			return badArg(where, "want string, got %s", describe(raw))
		}
		if len(s) > protocol.MaxBytesLen {
			return badArg(where, "string of %d bytes exceeds %d", len(s), protocol.MaxBytesLen)
		}
		enc.e.String(s)
	case kBytes:
		s, ok := jsonString(raw)
		if !ok {
			return badArg(where, "want bytes as a hex string, got %s", describe(raw))
		}
		b, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
		if err != nil {
			return badArg(where, "want bytes as a hex string: %v", err)
		}
		if len(b) > protocol.MaxBytesLen {
			return badArg(where, "%d bytes exceed %d", len(b), protocol.MaxBytesLen)
		}
		enc.e.Bytes(b)
	case kAddress:
		s, ok := jsonString(raw)
		if !ok {
			return badArg(where, "want an address \"0x\" + 32 hex digits, got %s", describe(raw))
		}
		b, err := parseAddress(s)
		if err != nil {
			return badArg(where, "%v", err)
		}
		enc.e.Fixed(b)
	case kVec:
		var items []json.RawMessage
		if r := bytes.TrimSpace(raw); len(r) == 0 || r[0] != '[' || json.Unmarshal(r, &items) != nil {
			return badArg(where, "want a JSON array of %s, got %s", t.elem.name, describe(raw))
		}
		if len(items) > protocol.MaxVecLen {
			return badArg(where, "%d elements exceed %d", len(items), protocol.MaxVecLen)
		}
		enc.e.Uleb(uint64(len(items)))
		for i, it := range items {
			if err := enc.value(t.elem, it, where+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	case kOption:
		if string(bytes.TrimSpace(raw)) == "null" {
			enc.e.U8(0)
			return nil
		}
		enc.e.U8(1)
		return enc.value(t.elem, raw, where)
	case kStruct:
		return enc.object(t.st.Fields, raw, where)
	}
	return nil
}

// parseAddress parses "0x" + 32 hex digits.
func parseAddress(s string) ([]byte, error) {
	h, ok := strings.CutPrefix(s, "0x")
	if !ok || len(h) != 2*addressLen {
		return nil, fmt.Errorf("want an address \"0x\" + 32 hex digits, got %q", s)
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return nil, fmt.Errorf("want an address \"0x\" + 32 hex digits, got %q", s)
	}
	return b, nil
}

// decoder turns canonical encodings into JSON by type, fields in
// declaration order. Errors stick in the protocol.Decoder.
type decoder struct {
	abi *ABI
	d   *protocol.Decoder
	out bytes.Buffer
}

func (a *ABI) decodeAll(b []byte, where string, f func(*decoder)) (json.RawMessage, error) {
	dec := decoder{abi: a, d: protocol.NewDecoder(b)}
	f(&dec)
	if err := dec.d.Finish(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadValue, where, err)
	}
	return dec.out.Bytes(), nil
}

func (dec *decoder) jsonString(s string) {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	_ = e.Encode(s) // a string always encodes
	dec.out.Write(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}

func (dec *decoder) object(fields []Field, where string) {
	dec.out.WriteByte('{')
	for i, f := range fields {
		if dec.d.Err() != nil {
			return
		}
		if i > 0 {
			dec.out.WriteByte(',')
		}
		dec.jsonString(f.Name)
		dec.out.WriteByte(':')
		ft, err := dec.abi.typeOf(f.Type)
		if err != nil {
			dec.d.Fail(err)
			return
		}
		dec.value(ft, where+"."+f.Name)
	}
	dec.out.WriteByte('}')
}

func (dec *decoder) value(t *typeNode, where string) {
	d := dec.d
	w := func(s string) { dec.out.WriteString(s) }
	switch t.kind {
	case kU8:
		w(strconv.FormatUint(uint64(d.U8()), 10))
	case kU16:
		w(strconv.FormatUint(uint64(d.U16()), 10))
	case kU32:
		w(strconv.FormatUint(uint64(d.U32()), 10))
	case kU64:
		w(strconv.FormatUint(d.U64(), 10))
	case kI32:
		w(strconv.FormatInt(int64(int32(d.U32())), 10))
	case kI64:
		w(strconv.FormatInt(d.I64(), 10))
	case kBool:
		w(strconv.FormatBool(d.Bool()))
	case kString:
		s := d.String(protocol.MaxBytesLen)
		if !utf8.ValidString(s) {
			d.Fail(fmt.Errorf("%s: string is not valid UTF-8", where))
		}
		dec.jsonString(s)
	case kBytes:
		w(`"0x` + hex.EncodeToString(d.Bytes(protocol.MaxBytesLen)) + `"`)
	case kAddress:
		w(`"0x` + hex.EncodeToString(d.Fixed(addressLen)) + `"`)
	case kVec:
		n := d.Length(protocol.MaxVecLen)
		dec.out.WriteByte('[')
		for i := 0; i < n && d.Err() == nil; i++ {
			if i > 0 {
				dec.out.WriteByte(',')
			}
			dec.value(t.elem, where+"["+strconv.Itoa(i)+"]")
		}
		dec.out.WriteByte(']')
	case kOption:
		switch tag := d.U8(); tag {
		case 0:
			w("null")
		case 1:
			dec.value(t.elem, where)
		default:
			d.Fail(fmt.Errorf("%w: %s: option tag %d", protocol.ErrNonCanonical, where, tag))
		}
	case kStruct:
		dec.object(t.st.Fields, where)
	}
}

// sortedKeys lists a JSON object's keys, sorted, so errors are stable.
func sortedKeys(m map[string]json.RawMessage) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
