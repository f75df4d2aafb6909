package console

import (
	"encoding/binary"
	"encoding/json"
	"slices"
	"sync"

	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/protocol"
)

// MoveCraft's land, as contracts/movecraft lays it out: 128×128×32
// voxels in 16×16×16 chunks, each stored chunk a "movecraft::Chunk" at the
// account "mchk" + u32 cx + u32 cy + u32 cz, its value the canonical
// encoding of 4096 bytes (ULEB128 80 20, then the voxels at index
// (z%16*16 + y%16)*16 + x%16). A chunk not stored holds the terrain.
const (
	mcChunk      = 16
	mcSizeX      = 128
	mcSizeY      = 128
	mcSizeZ      = 32
	mcChunkBytes = 2 + mcChunk*mcChunk*mcChunk
	mcChunkType  = "movecraft::Chunk"
	mcPlayerType = "movecraft::Player"
	mcPosType    = "movecraft::Position"
)

// Blocks of the land (voxel values).
const (
	blockAir     = 0
	blockBedrock = 1
	blockStone   = 2
	blockDirt    = 3
	blockGrass   = 4
	blockSand    = 5
)

// mcHash2, mcSurface and mcTerrain are the contract's terrain function
// (hash2, surface, terrain in movecraft.ts), in u32 arithmetic as there.
func mcHash2(a, b int32) uint32 {
	h := uint32(a)*374761393 + uint32(b)*668265263
	h = (h ^ (h >> 13)) * 1274126177
	return h ^ (h >> 16)
}

func mcSurface(x, y int) int { return 6 + int(mcHash2(int32(x>>3), int32(y>>3))&3) }

func mcTerrain(x, y, z int) byte {
	s := mcSurface(x, y)
	switch {
	case z == 0:
		return blockBedrock
	case z > s:
		return blockAir
	case z == s:
		if mcHash2(int32(x>>2)+1000, int32(y>>2))%7 == 0 {
			return blockSand
		}
		return blockGrass
	case z >= s-2:
		return blockDirt
	}
	return blockStone
}

// mcChunkAccount returns the chunk coordinates of a chunk account, and
// whether a is one inside the land.
func mcChunkAccount(a protocol.Address) (cx, cy, cz int, ok bool) {
	if string(a[:4]) != "mchk" {
		return 0, 0, 0, false
	}
	x, y, z := binary.LittleEndian.Uint32(a[4:]), binary.LittleEndian.Uint32(a[8:]), binary.LittleEndian.Uint32(a[12:])
	if x >= mcSizeX/mcChunk || y >= mcSizeY/mcChunk || z >= mcSizeZ/mcChunk {
		return 0, 0, 0, false
	}
	return int(x), int(y), int(z), true
}

// Player is a MoveCraft player on the map.
type Player struct {
	Address protocol.Address `json:"address"`
	Name    string           `json:"name"`
	X       int              `json:"x"`
	Y       int              `json:"y"`
	Z       int              `json:"z"`
}

// Cell is one map cell whose top block changed: the highest voxel that is
// not air, and its z.
type Cell struct {
	X     int  `json:"x"`
	Y     int  `json:"y"`
	Block byte `json:"block"`
	Z     int  `json:"z"`
}

// BlockEvent is a block placed or broken, from the contract's events.
type BlockEvent struct {
	Kind   string           `json:"kind"` // "placed" or "broken"
	Player protocol.Address `json:"player"`
	Name   string           `json:"name"`
	X      int              `json:"x"`
	Y      int              `json:"y"`
	Z      int              `json:"z"`
	Block  byte             `json:"block"`
	Height uint64           `json:"height"`
}

// WorldView is a MoveCraft channel's whole map: Top and Z hold, for cell
// (x, y) at index y*SizeX + x, its top block and that block's z.
type WorldView struct {
	SizeX   int      `json:"size_x"`
	SizeY   int      `json:"size_y"`
	SizeZ   int      `json:"size_z"`
	Top     []byte   `json:"top"` // base64 in JSON
	Z       []byte   `json:"z"`
	Players []Player `json:"players"`
}

// WorldUpdate is what changed on the map: the cells whose top changed,
// every player where it is now, and the blocks placed and broken.
type WorldUpdate struct {
	Cells   []Cell       `json:"cells"`
	Players []Player     `json:"players"`
	Blocks  []BlockEvent `json:"blocks"`
}

// mcModel is the land as of the last outcome applied: every voxel, and
// the players.
type mcModel struct {
	abi     *contracts.Contract
	vox     []byte // (z*SizeY + y)*SizeX + x
	top, z  []byte // per cell
	players map[protocol.Address]*Player
	// since the last delta
	cells  map[int]bool
	moved  bool
	blocks []BlockEvent
}

func newMCModel(abi *contracts.Contract) *mcModel {
	return &mcModel{abi: abi}
}

func (m *mcModel) contract() string { return "movecraft" }

// mcLand is the land nobody changed, every voxel from the terrain
// function, computed once.
var mcLand = sync.OnceValue(func() []byte {
	vox := make([]byte, mcSizeX*mcSizeY*mcSizeZ)
	for z := range mcSizeZ {
		for y := range mcSizeY {
			for x := range mcSizeX {
				vox[(z*mcSizeY+y)*mcSizeX+x] = mcTerrain(x, y, z)
			}
		}
	}
	return vox
})

func (m *mcModel) load(st protocol.State) {
	m.vox = slices.Clone(mcLand())
	m.players = map[protocol.Address]*Player{}
	for _, k := range st.Keys() {
		m.set(k, st[k], true)
	}
	m.top, m.z = make([]byte, mcSizeX*mcSizeY), make([]byte, mcSizeX*mcSizeY)
	for i := range m.top {
		m.column(i%mcSizeX, i/mcSizeX)
	}
	m.cells, m.moved, m.blocks = map[int]bool{}, false, nil
}

// set applies one resource's new value (nil: deleted).
func (m *mcModel) set(k protocol.ResourceKey, v []byte, present bool) {
	switch k.Type {
	case mcChunkType:
		cx, cy, cz, ok := mcChunkAccount(k.Account)
		if !ok || (present && (len(v) != mcChunkBytes || v[0] != 0x80 || v[1] != 0x20)) {
			return // not a chunk the contract writes: nothing to draw
		}
		for lz := range mcChunk {
			for ly := range mcChunk {
				for lx := range mcChunk {
					x, y, z := cx*mcChunk+lx, cy*mcChunk+ly, cz*mcChunk+lz
					i := (z*mcSizeY+y)*mcSizeX + x
					if present {
						m.vox[i] = v[2+(lz*mcChunk+ly)*mcChunk+lx]
					} else {
						m.vox[i] = mcLand()[i]
					}
				}
			}
		}
		if m.cells != nil {
			for ly := range mcChunk {
				for lx := range mcChunk {
					m.cells[(cy*mcChunk+ly)*mcSizeX+cx*mcChunk+lx] = true
				}
			}
		}
	case mcPlayerType, mcPosType:
		p := m.players[k.Account]
		if !present {
			if p != nil && k.Type == mcPlayerType {
				delete(m.players, k.Account)
				m.moved = true
			}
			return
		}
		j, err := m.abi.DecodeResource(k.Type, v)
		if err != nil {
			return // not what the contract writes: not drawn
		}
		if p == nil {
			p = &Player{Address: k.Account}
			m.players[k.Account] = p
		}
		m.moved = true
		if k.Type == mcPlayerType {
			var pl struct {
				Name string `json:"name"`
			}
			if json.Unmarshal(j, &pl) == nil {
				p.Name = pl.Name
			}
			return
		}
		var pos struct{ X, Y, Z int }
		if json.Unmarshal(j, &pos) == nil {
			p.X, p.Y, p.Z = pos.X, pos.Y, pos.Z
		}
	}
}

// column recomputes cell (x, y)'s top and reports whether it changed.
func (m *mcModel) column(x, y int) bool {
	i := y*mcSizeX + x
	var top, z byte
	for zz := mcSizeZ - 1; zz >= 0; zz-- {
		if b := m.vox[(zz*mcSizeY+y)*mcSizeX+x]; b != blockAir {
			top, z = b, byte(zz)
			break
		}
	}
	changed := m.top[i] != top || m.z[i] != z
	m.top[i], m.z[i] = top, z
	return changed
}

func (m *mcModel) apply(st protocol.State, o *protocol.Outcome) {
	for _, c := range o.ChangeSet.Changes {
		m.set(c.Key, c.New, c.Kind != protocol.OpDelete)
	}
	for _, e := range o.Events {
		kind := ""
		switch e.Type {
		case "movecraft::Placed":
			kind = "placed"
		case "movecraft::Broken":
			kind = "broken"
		default:
			continue
		}
		j, err := m.abi.DecodeEvent(e.Type, e.Data)
		if err != nil {
			continue
		}
		var bc struct {
			Player protocol.Address `json:"player"`
			Pos    struct{ X, Y, Z int }
			Block  byte `json:"block"`
		}
		if json.Unmarshal(j, &bc) != nil {
			continue
		}
		be := BlockEvent{Kind: kind, Player: bc.Player, X: bc.Pos.X, Y: bc.Pos.Y, Z: bc.Pos.Z, Block: bc.Block, Height: o.Height}
		if p := m.players[bc.Player]; p != nil {
			be.Name = p.Name
		}
		m.blocks = append(m.blocks, be)
		if len(m.blocks) > 64 {
			m.blocks = slices.Delete(m.blocks, 0, len(m.blocks)-64)
		}
	}
}

func (m *mcModel) playerList() []Player {
	out := make([]Player, 0, len(m.players))
	for _, p := range m.players {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Player) int { return a.Address.Compare(b.Address) })
	return out
}

func (m *mcModel) view() any {
	return WorldView{SizeX: mcSizeX, SizeY: mcSizeY, SizeZ: mcSizeZ, Top: slices.Clone(m.top), Z: slices.Clone(m.z),
		Players: m.playerList()}
}

// delta returns what changed since the last delta, or nil when nothing
// did.
func (m *mcModel) delta() any {
	var cells []Cell
	idx := make([]int, 0, len(m.cells))
	for i := range m.cells {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	for _, i := range idx {
		x, y := i%mcSizeX, i/mcSizeX
		if m.column(x, y) {
			cells = append(cells, Cell{X: x, Y: y, Block: m.top[i], Z: int(m.z[i])})
		}
	}
	if len(cells) == 0 && !m.moved && len(m.blocks) == 0 {
		clear(m.cells)
		return nil
	}
	u := WorldUpdate{Cells: cells, Players: m.playerList(), Blocks: m.blocks}
	if u.Cells == nil {
		u.Cells = []Cell{}
	}
	if u.Blocks == nil {
		u.Blocks = []BlockEvent{}
	}
	clear(m.cells)
	m.moved, m.blocks = false, nil
	return u
}

// Column is the voxels of one map cell, bottom up.
type Column struct {
	X      int    `json:"x"`
	Y      int    `json:"y"`
	Height uint64 `json:"height"`
	Blocks []byte `json:"blocks"` // z = 0 first; a JSON array of numbers
}

// MarshalJSON writes Blocks as numbers, not base64: the page reads them.
func (c Column) MarshalJSON() ([]byte, error) {
	bs := make([]int, len(c.Blocks))
	for i, b := range c.Blocks {
		bs[i] = int(b)
	}
	return json.Marshal(struct {
		X      int    `json:"x"`
		Y      int    `json:"y"`
		Height uint64 `json:"height"`
		Blocks []int  `json:"blocks"`
	}{c.X, c.Y, c.Height, bs})
}

func (m *mcModel) columnAt(x, y int) []byte {
	out := make([]byte, mcSizeZ)
	for z := range mcSizeZ {
		out[z] = m.vox[(z*mcSizeY+y)*mcSizeX+x]
	}
	return out
}
