package kernel

import (
	"os"
	"strings"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
)

// Each shard fetches, extracts and records only its own kernels; together
// the shards take the grid once, and their manifests name the same grid.
func TestFetchShard(t *testing.T) {
	const grid = `{"name": "k1", "headers": ["apt:bookworm/linux-headers-1.2.3-1-cloud-amd64", "apt:bookworm/linux-headers-1.2.3-1-common", "apt:bookworm/linux-kbuild-1.2"], "kernels": ["apt:bookworm/linux-image-1.2.3-1-cloud-amd64"]}
{"name": "k7", "headers": ["apt:trixie-backports/linux-headers-7.3.4+deb13-cloud-amd64", "apt:trixie-backports/linux-headers-7.3.4+deb13-common", "apt:trixie-backports/linux-kbuild-7.3.4+deb13"], "kernels": ["apt:trixie-backports/linux-binary-7.3.4+deb13-cloud-amd64", "apt:trixie-backports/linux-modules-7.3.4+deb13-cloud-amd64"]}
`
	seen := map[string]int{}
	var gridID string
	for k := 1; k <= 2; k++ {
		f := newFixture(t, grid)
		f.add(t, "bookworm", debianKernel("1.2.3-1-cloud-amd64", "1.2", false), "1.2.3-1")
		f.add(t, "trixie-backports", debianKernel("7.3.4+deb13-cloud-amd64", "7.3.4+deb13", true), "7.3.4-1~bpo13+1")
		f.archive.Publish(t)
		f.cfg.Shard = config.Shard{Index: k, Count: 2}
		m, dl, err := f.fetch(t)
		if err != nil {
			t.Fatalf("shard %d: %v", k, err)
		}
		if len(m.Kernels) != 1 || m.Shard == nil || *m.Shard != f.cfg.Shard || m.Grid == "" {
			t.Fatalf("shard %d manifest: %+v", k, m)
		}
		name := m.Kernels[0].Name
		seen[name]++
		if gridID != "" && m.Grid != gridID {
			t.Errorf("shards name different grids: %s, %s", gridID, m.Grid)
		}
		gridID = m.Grid
		if !strings.Contains(f.out.String(), "kernel: shard "+f.cfg.Shard.String()+" takes 1 of the grid's 2 kernels: "+name) {
			t.Errorf("shard %d does not say which kernels it takes:\n%s", k, f.out.String())
		}
		if dl.Bytes() == 0 {
			t.Errorf("shard %d downloaded nothing", k)
		}
		if boots, _ := os.ReadDir(f.cfg.Path("boot")); len(boots) != 1 || boots[0].Name() != m.Kernels[0].UnameR {
			t.Errorf("shard %d extracted %v, want only %s", k, boots, m.Kernels[0].UnameR)
		}
		loaded, err := LoadManifest(f.cfg.BuildDir)
		if err != nil || loaded.Shard == nil || loaded.Shard.Index != k {
			t.Errorf("shard %d: manifest on disk: %+v %v", k, loaded, err)
		}
	}
	if seen["k1"] != 1 || seen["k7"] != 1 {
		t.Errorf("the shards took %v, want k1 and k7 once each", seen)
	}
}
