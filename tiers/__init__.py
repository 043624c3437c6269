"""What a node is (its region, its children, its tree) and how it reaches the rest of the federation."""
