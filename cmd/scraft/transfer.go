package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/scraft/scraft/cluster"
	"github.com/scraft/scraft/protocol"
)

func init() {
	rootCmd.AddCommand(transferCmd())
}

// maxAddressText is the longest text taken as an address or a channel id
// (0x and hex digits with room to spare), so that a refusal never echoes
// a long one.
const maxAddressText = 2 + 2*len(protocol.Address{}) + 8

// transferTimeout bounds a transfer the admin listener serves: the chain
// call and Raft following it.
const transferTimeout = 30 * time.Second

// adminTransfer answers POST /transfer?to=ADDR[&channel=ID]: the node,
// which must lead the channel, hands its lead to the member ADDR (none
// named: the one it finds best) by a planned transfer
// (cluster.Channel.TransferLeadership). It is a normal operation, not a
// drill: it needs the admin token when there is one, and no
// --allow-drills. channel may be left out on a node that hosts one channel.
func (r *runningNode) adminTransfer(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	q := req.URL.Query()
	var to protocol.Address
	if s := q.Get("to"); s != "" {
		var err error
		if len(s) > maxAddressText {
			err = fmt.Errorf("%d characters, an address has at most %d", len(s), maxAddressText)
		} else {
			to, err = protocol.ParseAddress(s)
		}
		if err != nil {
			http.Error(w, fmt.Sprintf("to=%q: %v", truncateHost(s), err), http.StatusBadRequest)
			return
		}
	}
	c, status, err := r.transferChannel(q.Get("channel"))
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), transferTimeout)
	defer cancel()
	r.opts.Logger.Info("leader transfer asked", "channel", c.ID(), "to", successorName(to), "from", req.RemoteAddr)
	tr, err := c.TransferLeadership(ctx, to)
	if err != nil {
		code := http.StatusConflict
		switch {
		case errors.Is(err, cluster.ErrUnknownSuccessor):
			code = http.StatusNotFound
		case errors.Is(err, cluster.ErrSuccessorOffline):
			code = http.StatusServiceUnavailable
		case tr != nil: // the chain moved, Raft has not yet
			code = http.StatusGatewayTimeout
		}
		http.Error(w, err.Error(), code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(tr)
}

// successorName names a transfer's successor in a log: "best" when the
// leader is to pick.
func successorName(a protocol.Address) string {
	if a.IsZero() {
		return "best"
	}
	return a.String()
}

// transferChannel returns the channel a transfer names: the one hosted
// when none is named and there is only one.
func (r *runningNode) transferChannel(s string) (*cluster.Channel, int, error) {
	if s == "" {
		chs := r.node.Channels()
		if len(chs) != 1 {
			return nil, http.StatusBadRequest, fmt.Errorf("this node hosts %d channels: name one with channel=ID", len(chs))
		}
		return chs[0], 0, nil
	}
	if len(s) > maxAddressText {
		return nil, http.StatusBadRequest, fmt.Errorf("channel=%q: %d characters, a channel id has %d", truncateHost(s), len(s), 2+2*len(protocol.ChannelID{}))
	}
	id, err := protocol.ParseChannelID(s)
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	c, ok := r.node.Channel(id)
	if !ok {
		return nil, http.StatusNotFound, fmt.Errorf("channel %s is not hosted here", id)
	}
	return c, 0, nil
}

// transferReply is what POST /transfer answers.
type transferReply struct {
	From  protocol.Address `json:"from"`
	To    protocol.Address `json:"to"`
	Epoch uint64           `json:"epoch"`
	Took  time.Duration    `json:"took_ns"`
}

// postTransfer asks the node at admin to hand its lead of channel (""
// for its only one) to to ("" for the one it finds best).
func postTransfer(ctx context.Context, hc *http.Client, admin, token, channel, to string) (*transferReply, error) {
	q := url.Values{}
	if channel != "" {
		q.Set("channel", channel)
	}
	if to != "" {
		q.Set("to", to)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+admin+"/transfer?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var tr transferReply
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, fmt.Errorf("POST /transfer answered %q: %w", truncateHost(string(body)), err)
	}
	return &tr, nil
}

// transferCmd is `scraft transfer`: a planned change of a channel's leader.
func transferCmd() *cobra.Command {
	var (
		admin, token, channel, to string
		timeout                   time.Duration
		asJSON                    bool
	)
	cmd := &cobra.Command{
		Use:   "transfer --node ADMIN [--to ADDR] [--channel ID]",
		Short: "Hand a channel's lead from its leader to another member (a planned leader change)",
		Long: `Ask the node whose admin listener is --node, the channel's leader, to hand
its lead to the member --to (an address, 0x + 40 hex digits; left out, the
leader picks the member whose node answers and has applied the most). The
leader makes the successor a Raft voter if it is not, has the chain name it
leader of a new epoch (the chain decides who leads), and stops signing;
Raft leadership follows. Writes pause for about one chain block and a Raft
election.

Refused, with the reason, when the node does not lead (the error names who
does: ask that node), when the successor is not a server of the channel or
its node does not answer, and when the chain refuses it (its heartbeat
lapsed, it is leaving, or, in a channel of more than 5 members, it is no
candidate). --channel may be left out when the node hosts one channel.
When the node has an --admin-token, give it here (--admin-token or
SCRAFT_ADMIN_TOKEN).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if admin == "" {
				return errors.New("transfer: --node ADMIN: the admin address of the channel's leader")
			}
			if _, _, err := adminAddr(admin); err != nil {
				return fmt.Errorf("transfer: --node: %w", err)
			}
			if to != "" {
				if _, err := protocol.ParseAddress(to); err != nil {
					return fmt.Errorf("transfer: --to %q: %w", to, err)
				}
			}
			if channel != "" {
				if _, err := protocol.ParseChannelID(channel); err != nil {
					return fmt.Errorf("transfer: --channel: %w", err)
				}
			}
			addr, _, _ := adminAddr(admin)
			tr, err := postTransfer(cmd.Context(), &http.Client{Timeout: timeout}, addr, token, channel, to)
			if err != nil {
				return fmt.Errorf("transfer: %w", err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), tr)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "leader %s → %s, epoch %d, in %s\n", tr.From, tr.To, tr.Epoch, tr.Took.Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&admin, "node", "", "admin address of the leader's node (its --admin): HOST:PORT, or PORT on loopback (required)")
	f.StringVar(&to, "to", "", "address of the member to hand the lead to (default: the leader picks)")
	f.StringVar(&channel, "channel", "", "channel id (default: the node's only channel)")
	f.StringVar(&token, "admin-token", "", "the node's --admin-token, if it has one (prefer SCRAFT_ADMIN_TOKEN)")
	f.DurationVar(&timeout, "timeout", transferTimeout+5*time.Second, "how long to wait for the node's answer")
	f.BoolVar(&asJSON, "json", false, "print the outcome as JSON")
	return cmd
}
