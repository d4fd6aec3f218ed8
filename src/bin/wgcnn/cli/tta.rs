//! `--tta`, shared by the commands that predict with a saved model.

use wgcnn::model::test_time::TestTimeAugment;
use wgcnn::workflow::session::ModelSession;

/// `--tta` of the commands that predict with a saved model (eval, predict, serve).
#[derive(clap::Args)]
pub struct TtaArg {
    /// Test-time augmentation: none, or mirror (each image's probabilities averaged with its
    /// left-right mirror's). Default: the model file's.
    #[arg(long = "tta", value_name = "none|mirror", value_parser = |s: &str| s.parse::<TestTimeAugment>())]
    pub chosen: Option<TestTimeAugment>,
}

impl TtaArg {
    /// Makes `session` predict as asked, if asked.
    pub fn apply(&self, session: &mut ModelSession) {
        if let Some(test_time) = self.chosen {
            session.set_test_time_augment(test_time);
        }
    }
}
