package sopsfile

import (
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// ConfigFile is where sops and socle read the creation rules: at the root
// of the platform repository.
const ConfigFile = ".sops.yaml"

// Rules are the creation rules of a .sops.yaml, in order: the first whose
// path_regex matches a file's path says its recipients, as sops does.
type Rules []Rule

// Rule is one creation rule; only age recipients are read.
type Rule struct {
	PathRegex string
	Age       []string
	re        *regexp.Regexp
}

type rawRules struct {
	CreationRules []struct {
		PathRegex string    `yaml:"path_regex"`
		Age       yaml.Node `yaml:"age"`
	} `yaml:"creation_rules"`
}

// ParseRules reads a .sops.yaml. age is a comma-separated string, as sops
// writes it, or a list.
func ParseRules(data []byte) (Rules, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", ConfigFile, MaxSize)
	}
	var raw rawRules
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", ConfigFile, err)
	}
	var out Rules
	for i, r := range raw.CreationRules {
		re, err := regexp.Compile(r.PathRegex)
		if err != nil {
			return nil, fmt.Errorf("%s: creation_rules[%d].path_regex: %w", ConfigFile, i, err)
		}
		var recipients []string
		switch r.Age.Kind {
		case 0:
		case yaml.ScalarNode:
			recipients = splitRecipients(r.Age.Value)
		case yaml.SequenceNode:
			for _, n := range r.Age.Content {
				if n.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("%s:%d: creation_rules[%d].age: a list of recipients", ConfigFile, n.Line, i)
				}
				recipients = append(recipients, splitRecipients(n.Value)...)
			}
		default:
			return nil, fmt.Errorf("%s:%d: creation_rules[%d].age: a recipient, a comma-separated list or a list", ConfigFile, r.Age.Line, i)
		}
		out = append(out, Rule{PathRegex: r.PathRegex, Age: recipients, re: re})
	}
	return out, nil
}

func splitRecipients(s string) []string {
	var out []string
	for r := range strings.SplitSeq(s, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

// For returns the age recipients of the first rule that matches path (a
// slash-separated path from the repository's root), and whether one does.
func (rs Rules) For(path string) ([]string, bool) {
	for _, r := range rs {
		if r.re.MatchString(path) {
			return r.Age, len(r.Age) > 0
		}
	}
	return nil, false
}
