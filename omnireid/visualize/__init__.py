"""Pictures and cards of what a model learned: ranked lists, gallery lookups, activation maps,
gate clusters, training curves, ROC, and the model card."""
