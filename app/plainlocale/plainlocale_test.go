package plainlocale

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestCLocaleWithCodesetBecomesEnglish(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"LANG": "C.UTF-8"}, "en"},
		{map[string]string{"LC_ALL": "POSIX.utf8", "LANG": "de_DE.UTF-8"}, "en"},
		{map[string]string{"LANG": "C"}, ""},                           // bare C is already understood
		{map[string]string{"LANG": "fr_FR.UTF-8"}, ""},                 // a real locale is left alone
		{map[string]string{"LANG": "C.UTF-8", "LANGUAGE": "de"}, "de"}, // the user's choice wins
	}
	for _, c := range cases {
		env := map[string]string{}
		for k, v := range c.env {
			env[k] = v
		}
		apply(func(k string) string { return env[k] }, func(k, v string) error { env[k] = v; return nil })
		if env["LANGUAGE"] != c.want {
			t.Errorf("%v: LANGUAGE=%q, want %q", c.env, env["LANGUAGE"], c.want)
		}
	}
}

// The real binary under LANG=C.UTF-8 prints no Fyne locale error: this only holds if
// this package's init runs before Fyne's, which is what the test checks.
func TestShardliftStartsQuietlyUnderCUTF8(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := t.TempDir() + "/shardlift"
	build := exec.Command("go", "build", "-o", bin, "github.com/shardlift/shardlift")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--help")
	cmd.Env = append(os.Environ(), "LANG=C.UTF-8", "LC_ALL=", "LC_MESSAGES=", "LANGUAGE=")
	out, _ := cmd.CombinedOutput()
	if strings.Contains(string(out), "Fyne error") {
		t.Fatalf("shardlift --help under C.UTF-8 printed a Fyne error:\n%s", out)
	}
}
