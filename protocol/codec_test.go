package protocol

import (
	"bytes"
	"errors"
	"testing"
)

func TestDecoderRejects(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		read func(d *Decoder)
		want error
	}{
		{"truncated u64", []byte{1, 2, 3}, func(d *Decoder) { d.U64() }, ErrTruncated},
		{"trailing", []byte{1, 2}, func(d *Decoder) { d.U8() }, ErrTrailing},
		{"bool 2", []byte{2}, func(d *Decoder) { d.Bool() }, ErrNonCanonical},
		{"over-long uleb", []byte{0x80, 0x00}, func(d *Decoder) { d.Uleb() }, ErrNonCanonical},
		{"uleb overflow", bytes.Repeat([]byte{0xff}, 11), func(d *Decoder) { d.Uleb() }, ErrNonCanonical},
		{"length past limit", []byte{0x05, 1, 2, 3, 4, 5}, func(d *Decoder) { d.Bytes(4) }, ErrTooLong},
		{"bytes truncated", []byte{0x05, 1, 2}, func(d *Decoder) { d.Bytes(10) }, ErrTruncated},
		{"empty", nil, func(d *Decoder) { d.U8() }, ErrTruncated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(tc.in)
			tc.read(d)
			err := d.Finish()
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestCodecRoundTrip(t *testing.T) {
	e := NewEncoder(0)
	e.U8(7)
	e.Bool(true)
	e.U16(0xBEEF)
	e.U32(0xDEADBEEF)
	e.U64(1 << 60)
	e.I64(-5)
	e.Uleb(300)
	e.Bytes([]byte("abc"))
	e.String("héllo")
	e.Fixed([]byte{9, 9})
	d := NewDecoder(e.Out())
	if d.U8() != 7 || !d.Bool() || d.U16() != 0xBEEF || d.U32() != 0xDEADBEEF || d.U64() != 1<<60 ||
		d.I64() != -5 || d.Uleb() != 300 || string(d.Bytes(10)) != "abc" || d.String(10) != "héllo" ||
		!bytes.Equal(d.Fixed(2), []byte{9, 9}) {
		t.Fatal("round trip changed a value")
	}
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}
}

func TestStickyError(t *testing.T) {
	d := NewDecoder([]byte{1})
	d.U32()
	if d.U8() != 0 || d.Err() == nil {
		t.Fatal("reads after an error must return zero and keep the error")
	}
}
