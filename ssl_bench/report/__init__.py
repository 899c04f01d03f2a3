"""Reading a results folder: tables, statistics, plots, compute curves and the HTML report."""
