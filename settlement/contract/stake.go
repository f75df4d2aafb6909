package contract

import (
	"fmt"
)

// stake moves money from the sender's balance to its stake in a channel. A
// member backed by its stake has the new amount locked at once.
func (x *exec) stake(c *Stake) error {
	if c.Amount == 0 {
		return fmt.Errorf("%w: zero amount", ErrMalformed)
	}
	ch, err := x.openChannel(c.Channel)
	if err != nil {
		return err
	}
	acc := x.account(x.env.Sender)
	if acc.Balance < c.Amount {
		return fmt.Errorf("%w: balance %d, stake %d", ErrInsufficientFunds, acc.Balance, c.Amount)
	}
	cur := getU64(x.st, stakeKey(ch.ID, x.env.Sender))
	next, err := addU64(cur, c.Amount)
	if err != nil {
		return err
	}
	acc.Balance -= c.Amount
	x.putAccount(x.env.Sender, acc)
	putU64(x.st, stakeKey(ch.ID, x.env.Sender), next)
	if m, err := x.member(ch.ID, x.env.Sender); err == nil && m.Collateral == CollateralStake {
		m.Locked = next
		x.putMember(ch.ID, m)
	}
	x.emit(Event{Kind: EventStaked, Channel: ch.ID, Member: x.env.Sender, Amount: c.Amount})
	return nil
}

// deposit moves money from the sender's balance into the shared staking pool.
func (x *exec) deposit(c *Deposit) error {
	if c.Amount == 0 {
		return fmt.Errorf("%w: zero amount", ErrMalformed)
	}
	acc := x.account(x.env.Sender)
	if acc.Balance < c.Amount {
		return fmt.Errorf("%w: balance %d, deposit %d", ErrInsufficientFunds, acc.Balance, c.Amount)
	}
	next, err := addU64(acc.PoolDeposit, c.Amount)
	if err != nil {
		return err
	}
	acc.Balance -= c.Amount
	acc.PoolDeposit = next
	x.putAccount(x.env.Sender, acc)
	x.emit(Event{Kind: EventDeposited, Member: x.env.Sender, Amount: c.Amount})
	return nil
}

// withdraw moves unlocked pool money back to the balance.
func (x *exec) withdraw(c *Withdraw) error {
	if c.Amount == 0 {
		return fmt.Errorf("%w: zero amount", ErrMalformed)
	}
	acc := x.account(x.env.Sender)
	switch {
	case c.Amount > acc.PoolDeposit:
		return fmt.Errorf("%w: pool deposit %d, withdraw %d", ErrInsufficientFunds, acc.PoolDeposit, c.Amount)
	case c.Amount > acc.PoolFree():
		return fmt.Errorf("%w: %d of %d locked, withdraw %d", ErrLocked, acc.PoolLocked, acc.PoolDeposit, c.Amount)
	}
	acc.PoolDeposit -= c.Amount
	acc.Balance += c.Amount
	x.putAccount(x.env.Sender, acc)
	x.emit(Event{Kind: EventWithdrawn, Member: x.env.Sender, Amount: c.Amount})
	return nil
}
