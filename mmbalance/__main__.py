"""``python -m mmbalance`` (also what ``torchrun -m mmbalance`` runs)."""

from .cli import main

if __name__ == "__main__":
    main()
