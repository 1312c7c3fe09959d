"""Operations on a running pipeline: gaps, dead letters, reprocessing."""
