"""Pictures of what a model learned: ranked lists, gallery lookups, activation maps, gate
clusters, training curves, ROC (the model card is ``models.card``)."""
