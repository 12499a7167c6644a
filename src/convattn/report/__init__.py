"""`convattn-report`: turn sweep directories into a table, a CSV and a plot."""
