// {{name}}: a kreflex plugin. It watches Database objects (the example CRD,
// examples/crds/database.yaml) and writes which generation it saw into their status.
// Change Describe to subscribe to your own kinds and OnEvent to react.
package main

import (
	"fmt"

	"kreflex.dev/plugins/kreflex"
)

type reactor struct{}

func (reactor) Describe() kreflex.PluginInfo {
	return kreflex.PluginInfo{
		Name:    "{{name}}",
		Version: "0.1.0",
		Subscriptions: []kreflex.Subscription{{
			Group: "stable.example.com", Version: "v1", Kind: "Database", GenerationChangedOnly: true,
		}},
		Permissions: []kreflex.Permission{
			{Group: "stable.example.com", Resource: "databases/status", Verbs: []string{"patch"}},
		},
	}
}

func (reactor) OnEvent(e kreflex.Event) ([]kreflex.Action, *kreflex.PluginError) {
	if e.Kind == kreflex.Deleted || e.Kind == kreflex.Finalizing {
		return nil, nil
	}
	o, err := kreflex.Object(e.Object)
	if err != nil {
		return nil, err
	}
	generation, _ := kreflex.Int(kreflex.Path(o, "metadata", "generation"))
	message := fmt.Sprintf("{{name}} saw generation %d", generation)
	return []kreflex.Action{kreflex.StatusPatch(map[string]any{"status": map[string]any{"message": message}})}, nil
}

func init() { kreflex.Register(reactor{}) }

func main() {}
