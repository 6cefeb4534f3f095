"""Pure quantitative building blocks: bars, O(1) incremental indicators, feature sets."""
