package grid

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// ID identifies the grid by its kernels: each kernel's name, VM group and
// package references as written, in any line order. Two grid files with
// equal IDs describe the same kernels, so their shards fit together.
func (g *Grid) ID() string {
	var lines []string
	for _, k := range g.Kernels {
		var b strings.Builder
		fmt.Fprintf(&b, "%q %q", k.Name, k.VM)
		for _, group := range [][]Ref{k.Headers, k.Kernels} {
			raws := make([]string, 0, len(group))
			for _, r := range group {
				raws = append(raws, r.Raw)
			}
			slices.Sort(raws)
			fmt.Fprintf(&b, " %q", raws)
		}
		lines = append(lines, b.String())
	}
	slices.Sort(lines)
	h := sha256.New()
	for _, l := range lines {
		fmt.Fprintln(h, l)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Split deals the kernels to count shards, balanced by weight (the cells
// a kernel brings). The kernels are taken in the order of a hash of their
// names, each to the shard with the least weight so far (the lowest index
// on a tie), so the split depends only on the set of names and weights:
// not on the order of the lines, nor on the run. Each shard keeps the
// kernels in grid order. Kernel names are unique in a grid (Parse checks
// it), which makes the order total.
func Split(kernels []Kernel, count int, weight func(Kernel) int) [][]Kernel {
	if count < 1 {
		return nil
	}
	type dealt struct {
		k    Kernel
		hash string
		pos  int // grid order
	}
	order := make([]dealt, len(kernels))
	for i, k := range kernels {
		sum := sha256.Sum256([]byte(k.Name))
		order[i] = dealt{k: k, hash: hex.EncodeToString(sum[:]), pos: i}
	}
	slices.SortFunc(order, func(a, b dealt) int {
		return cmp.Or(strings.Compare(a.hash, b.hash), strings.Compare(a.k.Name, b.k.Name))
	})
	load := make([]int, count)
	picked := make([][]dealt, count)
	for _, d := range order {
		s := 0
		for i := range load {
			if load[i] < load[s] {
				s = i
			}
		}
		load[s] += max(weight(d.k), 1)
		picked[s] = append(picked[s], d)
	}
	shards := make([][]Kernel, count)
	for i, p := range picked {
		slices.SortFunc(p, func(a, b dealt) int { return cmp.Compare(a.pos, b.pos) })
		for _, d := range p {
			shards[i] = append(shards[i], d.k)
		}
	}
	return shards
}

// Shard returns the kernels of shard index (1-based) of count, as Split
// deals them. A shard that would take no kernel is an error: the grid has
// fewer kernels than shards.
func (g *Grid) Shard(index, count int, weight func(Kernel) int) ([]Kernel, error) {
	if index < 1 || index > count {
		return nil, fmt.Errorf("shard %d/%d: want 1 <= K <= N", index, count)
	}
	ks := Split(g.Kernels, count, weight)[index-1]
	if len(ks) == 0 {
		return nil, fmt.Errorf("shard %d/%d takes no kernel: %s has %d kernels, so at most %d shards", index, count, g.File, len(g.Kernels), len(g.Kernels))
	}
	return ks, nil
}
