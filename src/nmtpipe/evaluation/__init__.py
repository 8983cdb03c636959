"""Evaluation: translate the test split, score it (sacrebleu), write the report."""
