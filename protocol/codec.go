package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The canonical encoding is a small BCS-style codec: integers are fixed-width
// little endian, lengths are ULEB128, byte strings and vectors carry their
// length first, maps are written as vectors sorted by key with no duplicates,
// and a value decodes only if the decoder consumes every byte. Every value has
// exactly one encoding, so hashes and signatures over encodings are well
// defined.

// Limits on decoded sizes. Decoders refuse anything larger before allocating.
const (
	// MaxBytesLen bounds any single byte string (args, values, code).
	MaxBytesLen = 8 << 20
	// MaxVecLen bounds the element count of any vector or map.
	MaxVecLen = 1 << 20
	// MaxNameLen bounds identifiers: function names, resource types, labels.
	MaxNameLen = 256
)

var (
	// ErrTruncated means the input ended in the middle of a value.
	ErrTruncated = errors.New("protocol: truncated input")
	// ErrTrailing means bytes were left after a complete value.
	ErrTrailing = errors.New("protocol: trailing bytes after value")
	// ErrTooLong means a length prefix exceeds its limit.
	ErrTooLong = errors.New("protocol: length exceeds limit")
	// ErrNonCanonical means the input is decodable but is not the unique
	// canonical encoding (an over-long ULEB128, a bool other than 0 or 1,
	// unsorted or duplicate map keys).
	ErrNonCanonical = errors.New("protocol: non-canonical encoding")
)

// Encoder appends canonical encodings to a buffer. The zero value is ready.
type Encoder struct {
	buf []byte
}

// NewEncoder returns an Encoder whose buffer has room for size bytes.
func NewEncoder(size int) *Encoder { return &Encoder{buf: make([]byte, 0, size)} }

// Out returns the bytes written so far. The slice aliases the buffer.
func (e *Encoder) Out() []byte { return e.buf }

// Len returns the number of bytes written so far.
func (e *Encoder) Len() int { return len(e.buf) }

// U8 writes one byte.
func (e *Encoder) U8(v uint8) { e.buf = append(e.buf, v) }

// Bool writes 1 or 0.
func (e *Encoder) Bool(v bool) {
	if v {
		e.buf = append(e.buf, 1)
	} else {
		e.buf = append(e.buf, 0)
	}
}

// U16 writes v little endian.
func (e *Encoder) U16(v uint16) { e.buf = binary.LittleEndian.AppendUint16(e.buf, v) }

// U32 writes v little endian.
func (e *Encoder) U32(v uint32) { e.buf = binary.LittleEndian.AppendUint32(e.buf, v) }

// U64 writes v little endian.
func (e *Encoder) U64(v uint64) { e.buf = binary.LittleEndian.AppendUint64(e.buf, v) }

// I64 writes v as its two's complement, little endian.
func (e *Encoder) I64(v int64) { e.U64(uint64(v)) }

// Uleb writes v as ULEB128.
func (e *Encoder) Uleb(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }

// Fixed writes b with no length prefix; the reader must know its size.
func (e *Encoder) Fixed(b []byte) { e.buf = append(e.buf, b...) }

// Bytes writes a length-prefixed byte string.
func (e *Encoder) Bytes(b []byte) {
	e.Uleb(uint64(len(b)))
	e.buf = append(e.buf, b...)
}

// String writes a length-prefixed UTF-8 string.
func (e *Encoder) String(s string) {
	e.Uleb(uint64(len(s)))
	e.buf = append(e.buf, s...)
}

// Decoder reads canonical encodings. The first error sticks: every later read
// returns a zero value, and Err or Finish reports the error with the offset
// where it happened.
type Decoder struct {
	buf []byte
	off int
	err error
}

// NewDecoder returns a Decoder over b. It does not copy b; decoded byte slices
// are copies, so b may be reused once decoding is done.
func NewDecoder(b []byte) *Decoder { return &Decoder{buf: b} }

// Err returns the first error met, if any.
func (d *Decoder) Err() error { return d.err }

// Remaining returns the count of bytes not yet read.
func (d *Decoder) Remaining() int { return len(d.buf) - d.off }

// Fail records err (wrapped with the offset) unless an error is already
// recorded. Decoders of composite values use it for semantic checks.
func (d *Decoder) Fail(err error) {
	if d.err == nil {
		d.err = fmt.Errorf("at byte %d: %w", d.off, err)
	}
}

// Finish returns the first error, or ErrTrailing if bytes are left over.
func (d *Decoder) Finish() error {
	if d.err != nil {
		return d.err
	}
	if d.off != len(d.buf) {
		return fmt.Errorf("at byte %d: %w (%d left)", d.off, ErrTrailing, len(d.buf)-d.off)
	}
	return nil
}

func (d *Decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.buf)-d.off < n {
		d.Fail(ErrTruncated)
		return nil
	}
	b := d.buf[d.off : d.off+n]
	d.off += n
	return b
}

// U8 reads one byte.
func (d *Decoder) U8() uint8 {
	b := d.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

// Bool reads a byte that must be 0 or 1.
func (d *Decoder) Bool() bool {
	v := d.U8()
	if v > 1 {
		d.Fail(fmt.Errorf("%w: bool byte %d", ErrNonCanonical, v))
		return false
	}
	return v == 1
}

// U16 reads a little-endian uint16.
func (d *Decoder) U16() uint16 {
	b := d.take(2)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint16(b)
}

// U32 reads a little-endian uint32.
func (d *Decoder) U32() uint32 {
	b := d.take(4)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

// U64 reads a little-endian uint64.
func (d *Decoder) U64() uint64 {
	b := d.take(8)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

// I64 reads a little-endian two's complement int64.
func (d *Decoder) I64() int64 { return int64(d.U64()) }

// Uleb reads a ULEB128 value and refuses over-long encodings.
func (d *Decoder) Uleb() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf[d.off:])
	switch {
	case n == 0:
		d.Fail(ErrTruncated)
		return 0
	case n < 0:
		d.Fail(fmt.Errorf("%w: ULEB128 overflows 64 bits", ErrNonCanonical))
		return 0
	}
	// The shortest encoding of v has no trailing zero byte (except v == 0).
	if n > 1 && d.buf[d.off+n-1] == 0 {
		d.Fail(fmt.Errorf("%w: over-long ULEB128", ErrNonCanonical))
		return 0
	}
	d.off += n
	return v
}

// Length reads a ULEB128 length and refuses values above max.
func (d *Decoder) Length(max int) int {
	v := d.Uleb()
	if d.err != nil {
		return 0
	}
	if v > uint64(max) {
		d.Fail(fmt.Errorf("%w: %d > %d", ErrTooLong, v, max))
		return 0
	}
	return int(v)
}

// Fixed reads exactly n bytes and returns a copy.
func (d *Decoder) Fixed(n int) []byte {
	b := d.take(n)
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// FixedInto reads len(dst) bytes into dst.
func (d *Decoder) FixedInto(dst []byte) {
	if b := d.take(len(dst)); b != nil {
		copy(dst, b)
	}
}

// Bytes reads a length-prefixed byte string of at most max bytes. An empty
// string decodes as a non-nil empty slice only if the encoder wrote one; the
// two are not distinguished on the wire, so it returns nil for length 0.
func (d *Decoder) Bytes(max int) []byte {
	n := d.Length(max)
	if d.err != nil || n == 0 {
		return nil
	}
	return d.Fixed(n)
}

// String reads a length-prefixed string of at most max bytes.
func (d *Decoder) String(max int) string {
	n := d.Length(max)
	if d.err != nil || n == 0 {
		return ""
	}
	b := d.take(n)
	return string(b)
}
