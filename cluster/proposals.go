package cluster

// proposalScan hands out the channel's proposal ids as the chain view
// learns of them, to each loop that follows proposals (settlements, punish
// cases, complaints, elections): once the node's feed watches, the view is
// read again and the latest recentProposals are handed out (proposals made
// before the feed reached this channel: the feed's news of the channel
// brings the later ones), then every later one, none skipped. Beyond that
// first read it reads nothing itself: a proposal filed after the view's
// read shows in the read the feed's news of it brings.
type proposalScan struct {
	scanned bool
	seen    uint64 // the highest id handed out
}

func (s *proposalScan) next(c *Channel) []uint64 {
	if !s.scanned {
		select {
		case <-c.node.feed.watching:
		default:
			return nil
		}
		if c.refreshChain() != nil {
			return nil
		}
		rec := c.view.channel()
		if rec == nil {
			return nil
		}
		s.seen = rec.LastProposal - min(rec.LastProposal, recentProposals)
		s.scanned = true
	}
	rec := c.view.channel()
	if rec == nil || rec.LastProposal <= s.seen {
		return nil
	}
	ids := make([]uint64, 0, rec.LastProposal-s.seen)
	for pid := s.seen + 1; pid <= rec.LastProposal; pid++ {
		ids = append(ids, pid)
	}
	s.seen = rec.LastProposal
	return ids
}

// again hands out pid and the ids after it once more on the next call: a
// loop that could not read pid tries it again next round.
func (s *proposalScan) again(pid uint64) {
	if pid > 0 {
		s.seen = min(s.seen, pid-1)
	}
}
