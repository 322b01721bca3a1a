"""Decision logic and card rendering: stored findings in, CDS Hooks cards out."""
