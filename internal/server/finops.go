package server

import (
	"context"
	"fmt"

	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/notify"
)

// budgetAlerts hands cost alerts to the notifier, to the targets the budget
// names.
type budgetAlerts struct{ n *notify.Notifier }

func (b budgetAlerts) Notify(ctx context.Context, a cost.Alert) error {
	return b.n.NotifyTargets(ctx, a.Notify, notify.Event{
		Kind:    notify.BudgetAlert,
		Title:   fmt.Sprintf("Budget %s: %.0f%% %s", a.Budget, a.Threshold, a.Kind),
		Message: a.Message(),
		Fields: map[string]string{
			"budget": a.Budget, "month": fmt.Sprint(a.Month), "currency": a.Currency,
			"amount": fmt.Sprintf("%.2f", a.Amount), "actual": fmt.Sprintf("%.2f", a.Actual), "forecast": fmt.Sprintf("%.2f", a.Forecast),
		},
	})
}
