package contract

import (
	"errors"
	"testing"
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func TestStakeAndPool(t *testing.T) {
	initial := DefaultParams().InitialBalance
	tests := []struct {
		name  string
		calls []Call
		want  error
		check func(t *testing.T, h *harness)
	}{
		{"stake", []Call{&Stake{Amount: 500}}, nil, func(t *testing.T, h *harness) {
			if s := GetStake(h.st, h.ch, h.addr("alice")); s != 500 {
				t.Fatalf("stake %d", s)
			}
			if a := GetAccount(h.st, h.params(), h.addr("alice")); a.Balance != initial-500 {
				t.Fatalf("balance %d", a.Balance)
			}
		}},
		{"stake more than balance", []Call{&Stake{Amount: initial + 1}}, ErrInsufficientFunds, nil},
		{"stake zero", []Call{&Stake{}}, ErrMalformed, nil},
		{"stake in unknown channel", []Call{&Stake{Channel: [16]byte{9}, Amount: 1}}, ErrNoChannel, nil},
		{"deposit", []Call{&Deposit{Amount: 300}}, nil, func(t *testing.T, h *harness) {
			a := GetAccount(h.st, h.params(), h.addr("alice"))
			if a.PoolDeposit != 300 || a.Balance != initial-300 {
				t.Fatalf("account %+v", a)
			}
		}},
		{"deposit more than balance", []Call{&Deposit{Amount: initial + 1}}, ErrInsufficientFunds, nil},
		{"withdraw free", []Call{&Deposit{Amount: 300}, &Withdraw{Amount: 300}}, nil, func(t *testing.T, h *harness) {
			if a := GetAccount(h.st, h.params(), h.addr("alice")); a.PoolDeposit != 0 || a.Balance != initial {
				t.Fatalf("account %+v", a)
			}
		}},
		{"withdraw more than deposit", []Call{&Deposit{Amount: 300}, &Withdraw{Amount: 301}}, ErrInsufficientFunds, nil},
		{"withdraw locked", []Call{&Deposit{Amount: 300}, &Join{UsePool: true}, &Withdraw{Amount: 201}}, ErrLocked, nil},
		{"withdraw unlocked part", []Call{&Deposit{Amount: 300}, &Join{UsePool: true}, &Withdraw{Amount: 200}}, nil, func(t *testing.T, h *harness) {
			if a := GetAccount(h.st, h.params(), h.addr("alice")); a.PoolDeposit != 100 || a.PoolLocked != 100 {
				t.Fatalf("account %+v", a)
			}
		}},
		{"stake of a member is locked", []Call{&Stake{Amount: 100}, &Join{}, &Stake{Amount: 50}}, nil, func(t *testing.T, h *harness) {
			if m, _ := GetMember(h.st, h.ch, h.addr("alice")); m.Locked != 150 || m.Collateral != CollateralStake {
				t.Fatalf("member %+v", m)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.channel()
			var err error
			for _, c := range tc.calls {
				setChannel(c, h.ch)
				if _, err = h.call("alice", c); err != nil {
					break
				}
			}
			wantErr(t, err, tc.want)
			if err == nil && tc.check != nil {
				tc.check(t, h)
			}
		})
	}
}

// setChannel fills in the channel of a call built without one.
func setChannel(c Call, id [16]byte) {
	switch c := c.(type) {
	case *Stake:
		if c.Channel == ([16]byte{}) {
			c.Channel = id
		}
	case *Join:
		c.Channel = id
	case *Leave:
		c.Channel = id
	case *KeepAlive:
		c.Channel = id
	}
}
