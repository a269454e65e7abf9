package grid

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// gridOf makes a grid of n kernels named k00, k01, ...
func gridOf(t *testing.T, n int, order []int) *Grid {
	t.Helper()
	var b strings.Builder
	for _, i := range order {
		fmt.Fprintf(&b, `{"name": "k%02d", "headers": ["apt:linux-headers-%d"], "kernels": ["apt:linux-image-%d"]}`+"\n", i, i, i)
	}
	g, err := Parse(strings.NewReader(b.String()), "/x/kernels.txt")
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func names(ks []Kernel) []string {
	var out []string
	for _, k := range ks {
		out = append(out, k.Name)
	}
	return out
}

func one(Kernel) int { return 1 }

func TestSplitCoversTheGridOnce(t *testing.T) {
	g := gridOf(t, 11, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	for count := 1; count <= 11; count++ {
		seen := map[string]int{}
		for i, s := range Split(g.Kernels, count, one) {
			if n := len(s); n < 11/count || n > (11+count-1)/count {
				t.Errorf("%d shards: shard %d has %d kernels, not balanced", count, i+1, n)
			}
			if !slices.IsSortedFunc(s, func(a, b Kernel) int { return a.Line - b.Line }) {
				t.Errorf("%d shards: shard %d not in grid order: %v", count, i+1, names(s))
			}
			for _, k := range s {
				seen[k.Name]++
			}
		}
		for _, k := range g.Kernels {
			if seen[k.Name] != 1 {
				t.Errorf("%d shards: kernel %s is in %d shards", count, k.Name, seen[k.Name])
			}
		}
	}
}

// The split depends on the kernels, not on the order of the lines.
func TestSplitIgnoresLineOrder(t *testing.T) {
	inOrder := []int{0, 1, 2, 3, 4, 5, 6, 7, 8}
	want := Split(gridOf(t, 9, inOrder).Kernels, 4, one)
	r := rand.New(rand.NewPCG(1, 2))
	for range 10 {
		order := slices.Clone(inOrder)
		r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		got := Split(gridOf(t, 9, order).Kernels, 4, one)
		for i := range want {
			a, b := slices.Clone(names(want[i])), slices.Clone(names(got[i]))
			slices.Sort(a)
			slices.Sort(b)
			if !slices.Equal(a, b) {
				t.Fatalf("lines %v: shard %d has %v, with lines in order %v", order, i+1, b, a)
			}
		}
	}
}

// Heavier kernels (more cells) count for more: the weights stay balanced.
func TestSplitBalancesWeight(t *testing.T) {
	g := gridOf(t, 6, []int{0, 1, 2, 3, 4, 5})
	weight := func(k Kernel) int {
		if k.Name == "k00" || k.Name == "k01" {
			return 10
		}
		return 1
	}
	shards := Split(g.Kernels, 2, weight)
	for i, s := range shards {
		sum := 0
		for _, k := range s {
			sum += weight(k)
		}
		if sum < 10 || sum > 14 {
			t.Errorf("shard %d weighs %d (%v): the two heavy kernels should sit apart", i+1, sum, names(s))
		}
	}
}

func TestShardTakesNoKernel(t *testing.T) {
	g, err := Load(filepath.Join("..", "..", "testdata", "grids", "ci.txt"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := g.Shard(1, 2, one)
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.Shard(2, 2, one)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 1 || len(b) != 1 || a[0].Name == b[0].Name {
		t.Errorf("ci grid in two shards: %v and %v", names(a), names(b))
	}
	if _, err := g.Shard(3, 3, one); err == nil || !strings.Contains(err.Error(), "shard 3/3 takes no kernel") || !strings.Contains(err.Error(), "at most 2 shards") {
		t.Errorf("three shards of two kernels: %v", err)
	}
}

func TestGridID(t *testing.T) {
	a := gridOf(t, 3, []int{0, 1, 2})
	b := gridOf(t, 3, []int{2, 0, 1})
	c := gridOf(t, 3, []int{0, 1})
	if a.ID() != b.ID() {
		t.Error("the grid's identity depends on the order of its lines")
	}
	if a.ID() == c.ID() {
		t.Error("grids of different kernels have one identity")
	}
}
