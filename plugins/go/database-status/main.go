// database-status in Go: the kreflex example plugin (specified in plugins/README.md).
// Walks Database objects (stable.example.com/v1) from Provisioning to Ready; an unsupported
// spec.engine gets status Failed and a Warning Event.
package main

import (
	"fmt"
	"slices"

	"kreflex.dev/plugins/kreflex"
)

type databaseStatus struct{}

func (databaseStatus) Describe() kreflex.PluginInfo {
	return kreflex.PluginInfo{
		Name:    "database-status",
		Version: "0.1.0",
		Subscriptions: []kreflex.Subscription{{
			Group: "stable.example.com", Version: "v1", Kind: "Database", GenerationChangedOnly: true,
		}},
		Permissions: []kreflex.Permission{
			{Group: "stable.example.com", Resource: "databases/status", Verbs: []string{"get", "patch"}},
			kreflex.EventsPermission(),
		},
	}
}

var engines = []string{"postgres", "mysql", "mariadb"}

func (databaseStatus) OnEvent(e kreflex.Event) ([]kreflex.Action, *kreflex.PluginError) {
	if e.Kind == kreflex.Deleted || e.Kind == kreflex.Finalizing {
		return nil, nil
	}
	o, err := kreflex.Object(e.Object)
	if err != nil {
		return nil, err
	}
	str := func(keys ...string) (string, bool) { return kreflex.String(kreflex.Path(o, keys...)) }
	engine, _ := str("spec", "engine")
	name, ok := str("spec", "name")
	if !ok {
		name, _ = str("metadata", "name")
	}
	size, ok := str("spec", "size")
	if !ok {
		size = "default"
	}
	generation, _ := kreflex.Int(kreflex.Path(o, "metadata", "generation"))
	observed, hasObserved := kreflex.Int(kreflex.Path(o, "status", "observedGeneration"))
	state, _ := str("status", "state")
	status := func(state, message string) kreflex.Action {
		return kreflex.StatusPatch(map[string]any{"status": map[string]any{
			"state": state, "message": message, "observedGeneration": generation,
		}})
	}

	if !slices.Contains(engines, engine) {
		msg := "unsupported engine \"" + engine + "\": expected one of postgres, mysql, mariadb"
		if current, _ := str("status", "message"); state == "Failed" && current == msg {
			return nil, nil
		}
		return []kreflex.Action{status("Failed", msg), kreflex.WarningEvent("UnsupportedEngine", msg)}, nil
	}
	current := hasObserved && observed == generation
	switch {
	case state == "Ready" && current:
		return nil, nil
	case state == "Provisioning" && current:
		return []kreflex.Action{status("Ready", fmt.Sprintf("%s database \"%s\" of size %s is ready", engine, name, size))}, nil
	default:
		return []kreflex.Action{
			status("Provisioning", fmt.Sprintf("provisioning %s database \"%s\" of size %s", engine, name, size)),
			kreflex.RequeueAfter(500),
		}, nil
	}
}

func init() { kreflex.Register(databaseStatus{}) }

func main() {}
