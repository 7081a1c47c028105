//! Monthly budgets (placeholder: filled by the budget work).
