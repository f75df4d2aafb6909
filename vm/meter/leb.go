package meter

import "fmt"

// reader decodes a byte slice. base is the absolute module offset of b[0],
// used in error messages.
type reader struct {
	b    []byte
	pos  int
	base int
}

func (r *reader) off() int { return r.base + r.pos }

func (r *reader) done() bool { return r.pos >= len(r.b) }

func (r *reader) remaining() int { return len(r.b) - r.pos }

func (r *reader) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: offset %#x: %s", ErrMalformed, r.off(), fmt.Sprintf(format, args...))
}

func (r *reader) byte() (byte, error) {
	if r.pos >= len(r.b) {
		return 0, r.errorf("unexpected end")
	}
	c := r.b[r.pos]
	r.pos++
	return c, nil
}

func (r *reader) bytes(n int) ([]byte, error) {
	if n < 0 || n > r.remaining() {
		return nil, r.errorf("length %d beyond end", n)
	}
	b := r.b[r.pos : r.pos+n]
	r.pos += n
	return b, nil
}

// uleb reads an unsigned LEB128 of at most bits bits.
func (r *reader) uleb(bits uint) (uint64, error) {
	var v uint64
	maxBytes := (bits + 6) / 7
	for n := uint(0); ; n++ {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if n == maxBytes-1 {
			// The last byte ends the number and carries only the bits left.
			if rest := bits - 7*n; c&0x80 != 0 || (rest < 7 && c>>rest != 0) {
				return 0, r.errorf("integer too long")
			}
		}
		v |= uint64(c&0x7f) << (7 * n)
		if c&0x80 == 0 {
			return v, nil
		}
	}
}

// sleb reads a signed LEB128 of at most bits bits.
func (r *reader) sleb(bits uint) (int64, error) {
	var v int64
	var shift uint
	maxBytes := (bits + 6) / 7
	for n := uint(1); ; n++ {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if n > maxBytes {
			return 0, r.errorf("integer too long")
		}
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			if bits < 64 && (v < -(1<<(bits-1)) || v >= 1<<(bits-1)) {
				return 0, r.errorf("integer overflow")
			}
			return v, nil
		}
	}
}

func (r *reader) u32() (uint32, error) {
	v, err := r.uleb(32)
	return uint32(v), err
}

// count reads a vector length, bounded by limit and by the bytes left
// (every element takes at least one byte), so no count can make us
// allocate more than the input justifies.
func (r *reader) count(what string, limit int) (int, error) {
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	if int64(n) > int64(r.remaining()) {
		return 0, r.errorf("%d %s beyond end", n, what)
	}
	if int64(n) > int64(limit) {
		return 0, fmt.Errorf("%w: %d %s (limit %d)", ErrTooLarge, n, what, limit)
	}
	return int(n), nil
}

func (r *reader) name() ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	return r.bytes(int(n))
}

func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendS64(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// ulebLen is the length of v's unsigned LEB128 encoding.
func ulebLen(v uint32) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
