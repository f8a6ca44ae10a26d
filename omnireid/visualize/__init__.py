"""Pictures of what a model learned: ranked lists, activation maps, gate clusters, curves."""
