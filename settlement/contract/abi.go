package contract

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/scraft/scraft/protocol"
)

// MaxABILen bounds a channel's ABI, the contract's abi.json: it is a chain
// record every validator keeps for as long as the chain lives, so it is
// capped well below the code. The demo contracts' ABIs are a few KiB.
const MaxABILen = 64 << 10

// ChannelABI is the ABI a channel's creator recorded with its code: the
// contract's abi.json as given, and its hash (ABIHashOf).
type ChannelABI struct {
	Hash protocol.Hash
	JSON []byte
}

// ABIHashOf returns the hash under which an ABI is stored and by which a
// channel names it.
func ABIHashOf(abi []byte) protocol.Hash { return protocol.HashOf("scraft/abi/v1", abi) }

// checkABI bounds an ABI and checks that it is one JSON object. The rules
// do not read its schema (that is the clients' concern and a client
// validates it in full before sending); they keep only what every
// validator can check the same way, so a record is never garbage.
func checkABI(abi []byte) error {
	if len(abi) > MaxABILen {
		return fmt.Errorf("%w: ABI of %d bytes (max %d)", ErrTooLarge, len(abi), MaxABILen)
	}
	if !utf8.Valid(abi) || !json.Valid(abi) {
		return fmt.Errorf("%w: ABI is not valid JSON", ErrMalformed)
	}
	if t := bytes.TrimLeft(abi, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return fmt.Errorf("%w: ABI is not a JSON object", ErrMalformed)
	}
	return nil
}

// putABI stores abi once per hash and binds its hash to the channel.
func (x *exec) putABI(id protocol.ChannelID, abi []byte) {
	h := ABIHashOf(abi)
	if x.st.Get(abiKey(h)) == nil {
		x.st.Put(abiKey(h), abi)
	}
	x.st.Put(channelABIKey(id), h[:])
}

// GetABI returns the ABI recorded with the channel's code, or ErrNoABI when
// its creator recorded none (as no channel created before ABIs were
// recorded did).
func GetABI(st Store, id protocol.ChannelID) (*ChannelABI, error) {
	if _, err := GetChannel(st, id); err != nil {
		return nil, err
	}
	hb := st.Get(channelABIKey(id))
	if hb == nil {
		return nil, fmt.Errorf("%w: channel %s", ErrNoABI, id)
	}
	var h protocol.Hash
	copy(h[:], hb)
	b := st.Get(abiKey(h))
	if b == nil {
		panic(fmt.Sprintf("contract: channel %s names ABI %s, which is not stored", id, h))
	}
	return &ChannelABI{Hash: h, JSON: append([]byte(nil), b...)}, nil
}

func abiKey(h protocol.Hash) []byte             { return key1(prefixABI, h[:]) }
func channelABIKey(c protocol.ChannelID) []byte { return key1(prefixChannelABI, c[:]) }
