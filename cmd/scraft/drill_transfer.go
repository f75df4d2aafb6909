package main

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// transfer has the leader n hand its lead to the member it finds best
// (POST /transfer), the planned leader change of --mode transfer. It
// returns once the chain named the successor and Raft followed.
func (d *drill) transfer(ctx context.Context, n *drillNode) (*transferReply, error) {
	tr, err := postTransfer(ctx, &http.Client{Timeout: transferTimeout + 5*time.Second}, n.admin, d.token, d.ch.String(), "")
	if err != nil {
		return nil, fmt.Errorf("%s: POST /transfer: %w", n.name, err)
	}
	return tr, nil
}
